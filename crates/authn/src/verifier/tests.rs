use std::time::{Duration, SystemTime};

use portcullis_identity::SpiffeId;
use portcullis_pki::{Ca, CertifiedKey, IssueRequest};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;

use super::*;
use crate::classify_rustls;

struct Pki {
    root: Ca,
    int: Ca,
}

fn pki() -> Pki {
    let root = Ca::new_root("Test Root").unwrap();
    let int = root.new_intermediate("Test Intermediate").unwrap();
    Pki { root, int }
}

fn config(p: &Pki, mode: ClientAuthMode) -> ClientAuthConfig {
    ClientAuthConfig {
        roots: vec![p.root.cert_der()],
        crls: Vec::new(),
        mode,
        spiffe_trust_domains: vec![TrustDomain::parse("example.org").unwrap()],
    }
}

fn crl(ca: &Ca, revoked: &[Vec<u8>], valid_for: Duration) -> CertificateRevocationListDer<'static> {
    let pem = ca.crl(revoked, valid_for).unwrap();
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn at(offset: Duration) -> UnixTime {
    UnixTime::since_unix_epoch(
        (SystemTime::now() + offset)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    )
}

fn verify(
    v: &ClientVerifier,
    p: &Pki,
    leaf: &CertifiedKey,
    now: UnixTime,
) -> Result<ClientCertVerified, rustls::Error> {
    v.verify_client_cert(&leaf.certificate_der(), &[p.int.cert_der()], now)
}

#[test]
fn modes_set_whether_a_certificate_is_mandatory() {
    let p = pki();
    let required = client_verifier(&config(&p, ClientAuthMode::Required)).unwrap();
    let optional = client_verifier(&config(&p, ClientAuthMode::Optional)).unwrap();
    assert!(required.offer_client_auth() && optional.offer_client_auth());
    assert!(required.client_auth_mandatory());
    assert!(!optional.client_auth_mandatory());
    assert_eq!(required.root_hint_subjects().len(), 1);
    assert!(!required.supported_verify_schemes().is_empty());
}

#[test]
fn valid_chain_is_verified() {
    let p = pki();
    let v = client_verifier(&config(&p, ClientAuthMode::Required)).unwrap();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(SpiffeId::parse("spiffe://example.org/web").unwrap()),
            ..IssueRequest::client("web")
        })
        .unwrap();
    verify(&v, &p, &leaf, at(Duration::ZERO)).unwrap();
}

#[test]
fn missing_intermediate_is_unknown_issuer() {
    let p = pki();
    let v = client_verifier(&config(&p, ClientAuthMode::Required)).unwrap();
    let leaf = p.int.issue(&IssueRequest::client("web")).unwrap();
    let err = v
        .verify_client_cert(&leaf.certificate_der(), &[], at(Duration::ZERO))
        .unwrap_err();
    assert_eq!(classify_rustls(&err), "unknown_ca");
}

#[test]
fn svid_breach_carries_the_identity_error() {
    let p = pki();
    let v = client_verifier(&config(&p, ClientAuthMode::Required)).unwrap();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(SpiffeId::parse("spiffe://other.org/web").unwrap()),
            ..IssueRequest::client("web")
        })
        .unwrap();
    let err = verify(&v, &p, &leaf, at(Duration::ZERO)).unwrap_err();
    assert!(matches!(
        ClientVerifier::identity_error(&err),
        Some(IdentityError::UntrustedTrustDomain { .. })
    ));
    assert_eq!(classify_rustls(&err), "bad_svid");
    // The alert sent is certificate_unknown.
    let rustls::Error::InvalidCertificate(ce) = err else {
        panic!("expected InvalidCertificate");
    };
    assert_eq!(
        rustls::AlertDescription::from(ce),
        rustls::AlertDescription::CertificateUnknown
    );
}

#[test]
fn signing_key_usage_on_svid_is_refused_although_webpki_accepts_it() {
    let p = pki();
    let leaf = p
        .int
        .issue(&IssueRequest {
            spiffe_id: Some(SpiffeId::parse("spiffe://example.org/web").unwrap()),
            cert_sign_usage: true,
            ..IssueRequest::client("web")
        })
        .unwrap();
    // Path validation alone accepts it ...
    let mut plain = config(&p, ClientAuthMode::Required);
    plain.spiffe_trust_domains.clear();
    let roots = Arc::new(root_store(&plain.roots).unwrap());
    let webpki = WebPkiClientVerifier::builder_with_provider(roots, crate::provider::provider())
        .build()
        .unwrap();
    webpki
        .verify_client_cert(
            &leaf.certificate_der(),
            &[p.int.cert_der()],
            at(Duration::ZERO),
        )
        .unwrap();
    // ... the SVID rules do not.
    let v = client_verifier(&config(&p, ClientAuthMode::Required)).unwrap();
    let err = verify(&v, &p, &leaf, at(Duration::ZERO)).unwrap_err();
    assert_eq!(
        ClientVerifier::identity_error(&err),
        Some(&IdentityError::SigningKeyUsage("keyCertSign and cRLSign"))
    );
}

#[test]
fn crls_revoke_and_must_cover_every_issuer() {
    let p = pki();
    let good = p.int.issue(&IssueRequest::client("good")).unwrap();
    let bad = p.int.issue(&IssueRequest::client("bad")).unwrap();
    let hour = Duration::from_secs(3600);
    let int_crl = crl(&p.int, std::slice::from_ref(&bad.serial), hour);
    let root_crl = crl(&p.root, &[], hour);

    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.crls = vec![int_crl.clone(), root_crl];
    let v = client_verifier(&cfg).unwrap();
    verify(&v, &p, &good, at(Duration::ZERO)).unwrap();
    let err = verify(&v, &p, &bad, at(Duration::ZERO)).unwrap_err();
    assert_eq!(classify_rustls(&err), "revoked");

    // Without the root's CRL, the intermediate's status is unknown.
    cfg.crls = vec![int_crl];
    let v = client_verifier(&cfg).unwrap();
    let err = verify(&v, &p, &good, at(Duration::ZERO)).unwrap_err();
    assert_eq!(classify_rustls(&err), "revocation_unknown");
}

#[test]
fn stale_crl_fails_verification() {
    let p = pki();
    let good = p.int.issue(&IssueRequest::client("good")).unwrap();
    let hour = Duration::from_secs(3600);
    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.crls = vec![crl(&p.int, &[], hour), crl(&p.root, &[], hour)];
    let v = client_verifier(&cfg).unwrap();
    verify(&v, &p, &good, at(Duration::from_secs(1800))).unwrap();
    let err = verify(&v, &p, &good, at(2 * hour)).unwrap_err();
    assert_eq!(classify_rustls(&err), "crl_expired");
}

#[test]
fn crl_of_another_ca_does_not_revoke() {
    let p = pki();
    let other = Ca::new_root("Other Root").unwrap();
    let leaf = p.int.issue(&IssueRequest::client("x")).unwrap();
    let hour = Duration::from_secs(3600);
    // Same serial, wrong issuer: the revocation does not apply, and the
    // real issuers have no CRL.
    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.crls = vec![crl(&other, std::slice::from_ref(&leaf.serial), hour)];
    let v = client_verifier(&cfg).unwrap();
    let err = verify(&v, &p, &leaf, at(Duration::ZERO)).unwrap_err();
    assert_eq!(classify_rustls(&err), "revocation_unknown");
}

#[test]
fn no_roots_is_an_error() {
    let p = pki();
    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.roots.clear();
    let err = client_verifier(&cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no trust anchor is configured: client certificates need at least one ca certificate"
    );
}

#[test]
fn garbage_root_is_an_error_naming_its_index() {
    let p = pki();
    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.roots.push(CertificateDer::from(vec![1, 2, 3]));
    let err = client_verifier(&cfg).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ca certificate 1 cannot be used as a trust anchor"),
        "{err}"
    );
}

#[test]
fn garbage_crl_is_an_error() {
    let p = pki();
    let mut cfg = config(&p, ClientAuthMode::Required);
    cfg.crls
        .push(CertificateRevocationListDer::from(vec![1, 2, 3]));
    let err = client_verifier(&cfg).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot build the client certificate verifier"),
        "{err}"
    );
}
