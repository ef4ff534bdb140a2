use portcullis_pki::{Ca, CertifiedKey, IssueRequest};

use super::*;

struct Pki {
    int: Ca,
}

fn pki() -> Pki {
    let root = Ca::new_root("Test Root").unwrap();
    Pki {
        int: root.new_intermediate("Test Intermediate").unwrap(),
    }
}

fn td(s: &str) -> TrustDomain {
    TrustDomain::parse(s).unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn identity(leaf: &CertifiedKey, tds: &[TrustDomain]) -> Result<CertIdentity, IdentityError> {
    identity_from_chain(&[leaf.certificate_der()], tds)
}

#[test]
fn plain_certificate_yields_every_field() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            organization: Some("Example".into()),
            organizational_unit: Some("Payments".into()),
            dns: vec!["web.example.org".into(), "web2.example.org".into()],
            ips: vec!["10.0.0.1".parse().unwrap()],
            emails: vec!["web@example.org".into()],
            ..IssueRequest::client("web")
        })
        .unwrap();
    let got = identity(&leaf, &[]).unwrap();
    let expected_thumbprint = digest::digest(&digest::SHA256, &leaf.cert_der);
    assert_eq!(
        got,
        CertIdentity {
            spiffe_id: None,
            subject: "OU=Payments,O=Example,CN=web".into(),
            issuer: "CN=Test Intermediate".into(),
            subject_attrs: vec![
                ("CN".into(), "web".into()),
                ("O".into(), "Example".into()),
                ("OU".into(), "Payments".into()),
            ],
            dns_sans: vec!["web.example.org".into(), "web2.example.org".into()],
            email_sans: vec!["web@example.org".into()],
            thumbprint: Thumbprint(expected_thumbprint.as_ref().try_into().unwrap()),
        }
    );
}

#[test]
fn thumbprint_is_the_sha256_of_the_leaf_only() {
    let p = pki();
    let a = p.int.issue(&IssueRequest::client("a")).unwrap();
    let b = p.int.issue(&IssueRequest::client("a")).unwrap();
    let ta = identity(&a, &[]).unwrap().thumbprint;
    let tb = identity(&b, &[]).unwrap().thumbprint;
    assert_ne!(ta, tb);
    // Intermediates after the leaf do not change it.
    let with_chain = identity_from_chain(&[a.certificate_der(), p.int.cert_der()], &[]).unwrap();
    assert_eq!(with_chain.thumbprint, ta);
    // A known vector: SHA-256 of "abc".
    let abc = digest::digest(&digest::SHA256, b"abc");
    assert_eq!(
        Thumbprint(abc.as_ref().try_into().unwrap()).to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn svid_yields_its_spiffe_id() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://example.org/ns/prod/sa/web")),
            ..IssueRequest::client("")
        })
        .unwrap();
    let got = identity(&leaf, &[td("other.org"), td("example.org")]).unwrap();
    assert_eq!(
        got.spiffe_id,
        Some(id("spiffe://example.org/ns/prod/sa/web"))
    );
    assert_eq!(got.subject, "");
    assert!(got.subject_attrs.is_empty());
}

#[test]
fn empty_chain_is_no_certificate() {
    let err = identity_from_chain(&[], &[]).unwrap_err();
    assert_eq!(err, IdentityError::NoCertificate);
    assert_eq!(err.reason_code(), "no_certificate");
    assert!(!err.is_svid_violation());
}

#[test]
fn garbage_and_trailing_data_are_malformed() {
    let err =
        identity_from_chain(&[CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])], &[]).unwrap_err();
    assert_eq!(
        err,
        IdentityError::Malformed("not a valid x.509 certificate")
    );
    assert_eq!(err.reason_code(), "malformed_certificate");

    let p = pki();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let mut der = leaf.cert_der.clone();
    der.push(0);
    let err = identity_from_chain(&[CertificateDer::from(der)], &[]).unwrap_err();
    assert_eq!(
        err,
        IdentityError::Malformed("trailing data after the certificate")
    );
}

#[test]
fn two_uri_sans_are_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://example.org/a")),
            extra_uri_sans: vec!["spiffe://example.org/b".into()],
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert_eq!(err, IdentityError::UriSanCount { count: 2 });
    assert_eq!(
        err.to_string(),
        "x509-svid must hold exactly one uri san, this certificate holds 2"
    );
    assert_eq!(err.reason_code(), "svid_uri_san_count");
    assert!(err.is_svid_violation());
}

#[test]
fn non_spiffe_uri_san_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            extra_uri_sans: vec!["https://example.org/web".into()],
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "uri san `https://example.org/web` is not a valid spiffe id: scheme must be `spiffe://` (lowercase)"
    );
    assert_eq!(err.reason_code(), "svid_invalid_spiffe_id");
}

#[test]
fn spiffe_id_breaking_the_id_rules_is_refused() {
    let p = pki();
    for (uri, reason) in [
        ("SPIFFE://example.org/web", SpiffeIdError::WrongScheme),
        ("spiffe://example.org/a//b", SpiffeIdError::EmptySegment),
        ("spiffe://example.org/a/../b", SpiffeIdError::DotSegment),
        (
            "spiffe://example.org:443/a",
            SpiffeIdError::ForbiddenUriPart,
        ),
        ("spiffe://Example.org/a", SpiffeIdError::BadTrustDomainChar),
        (
            "spiffe://example.org/a?x=1",
            SpiffeIdError::ForbiddenUriPart,
        ),
    ] {
        let leaf = p
            .int
            .issue(&IssueRequest {
                extra_uri_sans: vec![uri.into()],
                ..IssueRequest::client("x")
            })
            .unwrap();
        let err = identity(&leaf, &[td("example.org")]).unwrap_err();
        assert_eq!(
            err,
            IdentityError::InvalidSpiffeId {
                uri: uri.into(),
                reason
            },
            "{uri}"
        );
    }
}

#[test]
fn quoted_values_are_escaped_and_bounded() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            extra_uri_sans: vec!["spiffe://ex\nample.org/`x`".into()],
            ..IssueRequest::client("x")
        })
        .unwrap();
    let msg = identity(&leaf, &[td("example.org")])
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("uri san `spiffe://ex\\nample.org/\\`x\\``"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    let long = format!("https://example.org/{}", "a".repeat(5000));
    let leaf = p
        .int
        .issue(&IssueRequest {
            extra_uri_sans: vec![long],
            ..IssueRequest::client("x")
        })
        .unwrap();
    let IdentityError::InvalidSpiffeId { uri, .. } =
        identity(&leaf, &[td("example.org")]).unwrap_err()
    else {
        panic!("expected InvalidSpiffeId");
    };
    assert_eq!(uri.chars().count(), MAX_QUOTED_VALUE_LEN + 1);
    assert!(uri.ends_with('…'));
}

#[test]
fn wrong_trust_domain_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://evil.org/web")),
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spiffe id `spiffe://evil.org/web` is not accepted: its trust domain `evil.org` is not configured"
    );
    assert_eq!(err.reason_code(), "svid_untrusted_trust_domain");
}

#[test]
fn trust_domain_match_is_exact() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://sub.example.org/web")),
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert!(
        matches!(err, IdentityError::UntrustedTrustDomain { .. }),
        "{err}"
    );
}

#[test]
fn no_configured_trust_domain_refuses_every_uri_san() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://example.org/web")),
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spiffe id `spiffe://example.org/web` is not accepted: no spiffe trust domain is configured"
    );
    assert_eq!(err.reason_code(), "svid_no_trust_domains");
}

#[test]
fn ca_leaf_with_spiffe_id_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://example.org/web")),
            is_ca: true,
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert_eq!(err, IdentityError::CaLeaf);
    assert_eq!(err.reason_code(), "svid_ca_leaf");
}

#[test]
fn leaf_with_signing_key_usage_is_refused() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(id("spiffe://example.org/web")),
            cert_sign_usage: true,
            ..IssueRequest::client("x")
        })
        .unwrap();
    let err = identity(&leaf, &[td("example.org")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x509-svid leaf key usage must not include keyCertSign and cRLSign"
    );
    assert_eq!(err.reason_code(), "svid_signing_key_usage");
}

#[test]
fn svid_rules_do_not_apply_without_uri_san() {
    // A CA-flagged certificate without URI SAN is not an SVID; refusing it
    // as an end entity is chain validation's job (webpki), not this one's.
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            cert_sign_usage: true,
            ..IssueRequest::client("x")
        })
        .unwrap();
    assert!(identity(&leaf, &[]).unwrap().spiffe_id.is_none());
}

#[test]
fn every_reason_code_is_distinct() {
    let all = [
        IdentityError::NoCertificate,
        IdentityError::Malformed("x"),
        IdentityError::UriSanCount { count: 2 },
        IdentityError::InvalidSpiffeId {
            uri: String::new(),
            reason: SpiffeIdError::Empty,
        },
        IdentityError::UntrustedTrustDomain {
            id: String::new(),
            trust_domain: String::new(),
        },
        IdentityError::NoTrustDomains { id: String::new() },
        IdentityError::CaLeaf,
        IdentityError::SigningKeyUsage("keyCertSign"),
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(IdentityError::reason_code).collect();
    assert_eq!(codes.len(), all.len());
}
