use portcullis_pki::{Ca, IssueRequest};

use super::*;
use crate::ClientAuthMode;

fn client_auth(root: &Ca) -> ClientAuthConfig {
    ClientAuthConfig {
        roots: vec![root.cert_der()],
        crls: Vec::new(),
        mode: ClientAuthMode::Required,
        spiffe_trust_domains: Vec::new(),
    }
}

#[test]
fn server_config_offers_h2_and_http11_without_resumption() {
    let root = Ca::new_root("Root").unwrap();
    let server = root.issue(&IssueRequest::server("localhost")).unwrap();
    let cfg = server_config(
        vec![server.certificate_der()],
        server.private_key_der(),
        &client_auth(&root),
    )
    .unwrap();
    assert_eq!(cfg.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(!cfg.session_storage.can_cache());
    assert_eq!(cfg.send_tls13_tickets, 0);
    assert!(!cfg.ticketer.enabled());
}

#[test]
fn server_key_must_match_the_certificate() {
    let root = Ca::new_root("Root").unwrap();
    let a = root.issue(&IssueRequest::server("localhost")).unwrap();
    let b = root.issue(&IssueRequest::server("localhost")).unwrap();
    let err = server_config(
        vec![a.certificate_der()],
        b.private_key_der(),
        &client_auth(&root),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("server certificate and key are not usable"),
        "{err}"
    );
}

#[test]
fn empty_server_chain_is_refused() {
    let root = Ca::new_root("Root").unwrap();
    let a = root.issue(&IssueRequest::server("localhost")).unwrap();
    let err = server_config(Vec::new(), a.private_key_der(), &client_auth(&root)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server certificate and key are not usable: the certificate chain is empty"
    );
}

#[test]
fn server_config_needs_client_roots() {
    let root = Ca::new_root("Root").unwrap();
    let a = root.issue(&IssueRequest::server("localhost")).unwrap();
    let mut auth = client_auth(&root);
    auth.roots.clear();
    let err = server_config(vec![a.certificate_der()], a.private_key_der(), &auth).unwrap_err();
    assert!(matches!(err, AuthnError::NoClientRoots), "{err}");
}

#[test]
fn upstream_config_offers_h2_and_http11() {
    let root = Ca::new_root("Root").unwrap();
    let cfg = upstream_client_config(vec![root.cert_der()]).unwrap();
    assert_eq!(cfg.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(!cfg.client_auth_cert_resolver.has_certs());
}

#[test]
fn upstream_config_needs_roots() {
    let err = upstream_client_config(Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no trust anchor is configured for the upstream: at least one ca certificate is needed"
    );
}
