use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .expect("subject key identifier")
}

fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authority key identifier")
}

fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[test]
fn root_ca_is_self_signed_ca_with_cert_and_crl_sign() {
    let root = Ca::new_root("Test Root").unwrap();
    let der = root.cert_der();
    let cert = parse(&der);
    assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, None);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature());
    assert!(cert.extended_key_usage().unwrap().is_none());
    assert_eq!(cert.raw_serial().len(), SERIAL_LEN);
    cert.verify_signature(None).unwrap();
    assert!(root.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    // The PEM we keep is the same certificate as the DER.
    assert_eq!(
        CertificateDer::from_pem_slice(root.cert_pem().as_bytes()).unwrap(),
        der
    );
}

#[test]
fn intermediate_has_path_len_zero_and_is_signed_by_root() {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    let root_der = root.cert_der();
    let int_der = int.cert_der();
    let (root_cert, int_cert) = (parse(&root_der), parse(&int_der));
    assert_eq!(int_cert.issuer().as_raw(), root_cert.subject().as_raw());
    let bc = int_cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = int_cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    int_cert
        .verify_signature(Some(root_cert.public_key()))
        .unwrap();
    assert_eq!(aki(&int_cert), ski(&root_cert));
    assert!(int_cert.validity().not_after <= root_cert.validity().not_after);
}

#[test]
fn intermediate_cannot_issue_another_ca() {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    let err = int.new_intermediate("Too Deep").unwrap_err();
    assert!(matches!(err, PkiError::PathLenExhausted { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "ca `Test Intermediate` may not issue ca certificates (path length constraint 0)"
    );
}

#[test]
fn client_leaf_has_client_profile_and_all_sans() {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    let id = SpiffeId::parse("spiffe://example.org/ns/prod/sa/web").unwrap();
    let req = IssueRequest {
        organization: Some("Example".into()),
        organizational_unit: Some("Payments".into()),
        spiffe_id: Some(id),
        dns: vec!["web.example.org".into()],
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))],
        emails: vec!["web@example.org".into()],
        ..IssueRequest::client("web")
    };
    let leaf = int.issue(&req).unwrap();
    let cert = parse(&leaf.cert_der);
    let int_der = int.cert_der();
    let int_cert = parse(&int_der);
    cert.verify_signature(Some(int_cert.public_key())).unwrap();
    assert_eq!(cert.issuer().as_raw(), int_cert.subject().as_raw());
    assert_eq!(aki(&cert), ski(&int_cert));

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature());
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);

    let names: Vec<String> = cert
        .subject()
        .iter_attributes()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["web", "Example", "Payments"]);

    let sans = &cert.subject_alternative_name().unwrap().unwrap().value;
    let sans: Vec<String> = sans
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("uri:{u}"),
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::RFC822Name(e) => format!("email:{e}"),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "uri:spiffe://example.org/ns/prod/sa/web",
            "dns:web.example.org",
            "ip:[10, 1, 2, 3]",
            "email:web@example.org"
        ]
    );
    assert_eq!(cert.raw_serial(), leaf.serial.as_slice());
    assert_eq!(leaf.serial.len(), SERIAL_LEN);
    assert_eq!(leaf.certificate_der().as_ref(), leaf.cert_der.as_slice());
    assert_eq!(
        CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
            .unwrap()
            .as_ref(),
        leaf.cert_der.as_slice()
    );
    // The key belongs to the certificate.
    let key = KeyPair::try_from(&leaf.private_key_der()).unwrap();
    assert_eq!(key.subject_public_key_info(), cert.public_key().raw);
    let key_from_pem = KeyPair::from_pem(&leaf.key_pem).unwrap();
    assert_eq!(
        key_from_pem.subject_public_key_info(),
        cert.public_key().raw
    );
}

#[test]
fn usage_sets_the_extended_key_usage() {
    let root = Ca::new_root("Test Root").unwrap();
    for (usage, server, client) in [
        (Usage::Client, false, true),
        (Usage::Server, true, false),
        (Usage::Both, true, true),
    ] {
        let leaf = root
            .issue(&IssueRequest {
                usage,
                ..IssueRequest::client("x")
            })
            .unwrap();
        let cert = parse(&leaf.cert_der);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!(
            (eku.server_auth, eku.client_auth),
            (server, client),
            "{usage:?}"
        );
    }
}

#[test]
fn server_request_puts_host_into_dns_or_ip_san() {
    let dns = IssueRequest::server("localhost");
    assert_eq!(dns.dns, ["localhost"]);
    assert!(dns.ips.is_empty());
    assert_eq!(dns.usage, Usage::Server);
    let ip = IssueRequest::server("127.0.0.1");
    assert!(ip.dns.is_empty());
    assert_eq!(ip.ips, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
}

#[test]
fn default_validity_is_backdated_and_limited() {
    let before = SystemTime::now();
    let req = IssueRequest::client("x");
    let after = SystemTime::now();
    assert!(req.not_before <= before - NOT_BEFORE_BACKDATE + Duration::from_secs(1));
    assert!(req.not_before >= before - NOT_BEFORE_BACKDATE - Duration::from_secs(1));
    assert!(req.not_after <= after + DEFAULT_LEAF_VALIDITY);
    let root = Ca::new_root("Test Root").unwrap();
    let leaf = root.issue(&req).unwrap();
    let cert = parse(&leaf.cert_der);
    assert_eq!(cert.validity().not_before.timestamp(), unix(req.not_before));
    assert_eq!(cert.validity().not_after.timestamp(), unix(req.not_after));
}

#[test]
fn explicit_validity_is_written() {
    let root = Ca::new_root("Test Root").unwrap();
    let not_before = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let not_after = UNIX_EPOCH + Duration::from_secs(1_600_086_400);
    let leaf = root
        .issue(&IssueRequest {
            not_before,
            not_after,
            ..IssueRequest::client("old")
        })
        .unwrap();
    let cert = parse(&leaf.cert_der);
    assert_eq!(cert.validity().not_before.timestamp(), 1_600_000_000);
    assert_eq!(cert.validity().not_after.timestamp(), 1_600_086_400);
}

#[test]
fn inverted_validity_is_refused() {
    let root = Ca::new_root("Test Root").unwrap();
    let now = SystemTime::now();
    let err = root
        .issue(&IssueRequest {
            not_before: now,
            not_after: now,
            ..IssueRequest::client("x")
        })
        .unwrap_err();
    assert!(matches!(err, PkiError::InvalidValidity));
}

#[test]
fn non_ascii_san_is_refused_with_the_value() {
    let root = Ca::new_root("Test Root").unwrap();
    let err = root
        .issue(&IssueRequest {
            dns: vec!["bücher.example".into()],
            ..IssueRequest::client("x")
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid dns san `bücher.example`: only ascii characters are allowed"
    );
}

#[test]
fn serials_are_random_and_positive() {
    let root = Ca::new_root("Test Root").unwrap();
    let a = root.issue(&IssueRequest::client("a")).unwrap();
    let b = root.issue(&IssueRequest::client("a")).unwrap();
    assert_ne!(a.serial, b.serial);
    for s in [&a.serial, &b.serial] {
        assert_eq!(s.len(), SERIAL_LEN);
        assert!(s[0] & 0x80 == 0 && s[0] != 0);
    }
}

#[test]
fn negative_test_options_make_bad_leaves() {
    let root = Ca::new_root("Test Root").unwrap();
    let ca_leaf = root
        .issue(&IssueRequest {
            is_ca: true,
            ..IssueRequest::client("ca-leaf")
        })
        .unwrap();
    let cert = parse(&ca_leaf.cert_der);
    assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
    assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());

    let signing_leaf = root
        .issue(&IssueRequest {
            cert_sign_usage: true,
            ..IssueRequest::client("signer")
        })
        .unwrap();
    let cert = parse(&signing_leaf.cert_der);
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());

    let two_uris = root
        .issue(&IssueRequest {
            spiffe_id: Some(SpiffeId::parse("spiffe://example.org/a").unwrap()),
            extra_uri_sans: vec!["https://example.org/b".into()],
            ..IssueRequest::client("two")
        })
        .unwrap();
    let cert = parse(&two_uris.cert_der);
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["spiffe://example.org/a", "https://example.org/b"]);
}

#[test]
fn empty_common_name_gives_empty_subject() {
    let root = Ca::new_root("Test Root").unwrap();
    let leaf = root
        .issue(&IssueRequest {
            spiffe_id: Some(SpiffeId::parse("spiffe://example.org/w").unwrap()),
            ..IssueRequest::client("")
        })
        .unwrap();
    let cert = parse(&leaf.cert_der);
    assert_eq!(cert.subject().iter_attributes().count(), 0);
    // RFC 5280 4.2.1.6: the SAN is critical when the subject is empty.
    assert!(cert.subject_alternative_name().unwrap().unwrap().critical);
}

#[test]
fn debug_never_shows_keys() {
    let root = Ca::new_root("Test Root").unwrap();
    let leaf = root.issue(&IssueRequest::client("x")).unwrap();
    let key_body = leaf.key_pem.lines().nth(1).unwrap().to_owned();
    let ca_key_body = root.key_pem().lines().nth(1).unwrap().to_owned();
    let leaf_dbg = format!("{leaf:?}");
    let ca_dbg = format!("{root:?}");
    assert!(leaf_dbg.contains("[redacted]"));
    assert!(ca_dbg.contains("[redacted]"));
    for dbg in [&leaf_dbg, &ca_dbg] {
        assert!(!dbg.contains("PRIVATE KEY"));
        assert!(!dbg.contains(&key_body));
        assert!(!dbg.contains(&ca_key_body));
    }
}

#[test]
fn ca_loaded_from_pem_issues_chaining_certificates() {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    let loaded = Ca::from_pem(int.cert_pem(), &int.key_pem()).unwrap();
    assert_eq!(loaded.cert_der(), int.cert_der());
    assert_eq!(loaded.cert_pem(), int.cert_pem());
    // Loaded from an intermediate with path length 0: still no sub-CAs.
    assert!(matches!(
        loaded.new_intermediate("x"),
        Err(PkiError::PathLenExhausted { .. })
    ));
    let leaf = loaded.issue(&IssueRequest::client("loaded")).unwrap();
    let int_der = int.cert_der();
    let int_cert = parse(&int_der);
    let cert = parse(&leaf.cert_der);
    assert_eq!(cert.issuer().as_raw(), int_cert.subject().as_raw());
    assert_eq!(aki(&cert), ski(&int_cert));
    cert.verify_signature(Some(int_cert.public_key())).unwrap();

    // A loaded root may still issue intermediates.
    let loaded_root = Ca::from_pem(root.cert_pem(), &root.key_pem()).unwrap();
    loaded_root.new_intermediate("Second Intermediate").unwrap();
}

#[test]
fn from_pem_refuses_a_leaf_certificate() {
    let root = Ca::new_root("Test Root").unwrap();
    let leaf = root.issue(&IssueRequest::client("leaf")).unwrap();
    let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate `leaf` is not a ca certificate (basicConstraints ca is not true)"
    );
}

#[test]
fn from_pem_refuses_a_key_of_another_ca() {
    let a = Ca::new_root("Root A").unwrap();
    let b = Ca::new_root("Root B").unwrap();
    let err = Ca::from_pem(a.cert_pem(), &b.key_pem()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the private key does not belong to the certificate `Root A`"
    );
}

#[test]
fn from_pem_refuses_garbage() {
    let root = Ca::new_root("Test Root").unwrap();
    let err = Ca::from_pem("hello", &root.key_pem()).unwrap_err();
    assert_eq!(err.to_string(), "pem input holds no certificate");
    let err = Ca::from_pem(root.cert_pem(), root.cert_pem()).unwrap_err();
    assert_eq!(err.to_string(), "pem input holds no private key");
    let broken = root.cert_pem().replace("-----END CERTIFICATE-----", "");
    let err = Ca::from_pem(&broken, &root.key_pem()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed pem input: a section has no end marker"
    );
}

#[test]
fn crl_lists_revoked_serials_and_is_signed_by_the_ca() {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    let a = int.issue(&IssueRequest::client("a")).unwrap();
    let b = int.issue(&IssueRequest::client("b")).unwrap();
    let before = SystemTime::now();
    let pem = int
        .crl(std::slice::from_ref(&a.serial), Duration::from_secs(3600))
        .unwrap();
    let der = CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert!(rest.is_empty());
    let int_der = int.cert_der();
    let int_cert = parse(&int_der);
    assert_eq!(crl.issuer().as_raw(), int_cert.subject().as_raw());
    crl.verify_signature(int_cert.public_key()).unwrap();
    let revoked: Vec<&[u8]> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(revoked, [a.serial.as_slice()]);
    assert!(!revoked.contains(&b.serial.as_slice()));
    let next = crl.next_update().unwrap().timestamp();
    assert!(
        (next - unix(before) - 3600).abs() <= 2,
        "next update {next}"
    );
    assert!(crl.crl_number().is_some());
    // The CRL's authority key identifier is the CA's subject key identifier.
    let crl_aki = crl
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(crl_aki, ski(&int_cert));
}

#[test]
fn crl_of_a_loaded_ca_keeps_its_key_identifier() {
    let root = Ca::new_root("Test Root").unwrap();
    let loaded = Ca::from_pem(root.cert_pem(), &root.key_pem()).unwrap();
    let pem = loaded.crl(&[], Duration::from_secs(60)).unwrap();
    let der = CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);
    let root_der = root.cert_der();
    crl.verify_signature(parse(&root_der).public_key()).unwrap();
}

#[test]
fn crl_refuses_an_empty_serial() {
    let root = Ca::new_root("Test Root").unwrap();
    let err = root
        .crl(&[vec![1], Vec::new()], Duration::from_secs(60))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "serial number 1 of the revocation list is empty"
    );
}

#[test]
fn cert_serial_reads_the_serial_back() {
    let root = Ca::new_root("Test Root").unwrap();
    let leaf = root.issue(&IssueRequest::client("x")).unwrap();
    assert_eq!(cert_serial(&leaf.cert_pem).unwrap(), leaf.serial);
    assert!(matches!(
        cert_serial("nothing here"),
        Err(PkiError::NoPemItem("certificate"))
    ));
}

#[test]
fn pem_encoding_round_trips_for_all_padding_lengths() {
    for len in [0usize, 1, 2, 3, 47, 48, 49, 100] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let pem = pem_encode("CERTIFICATE", &data);
        let back = CertificateDer::from_pem_slice(pem.as_bytes());
        if len == 0 {
            // An empty section decodes to an empty certificate.
            assert_eq!(back.unwrap().as_ref(), &[] as &[u8]);
        } else {
            assert_eq!(back.unwrap().as_ref(), data.as_slice(), "len {len}");
        }
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }
}
