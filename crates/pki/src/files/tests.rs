use std::os::unix::fs::PermissionsExt;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn init_writes_the_ca_files_with_their_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let report = init_dir(&dir).unwrap();
    assert_eq!(report.root_cert, dir.join("root-ca.pem"));
    assert_eq!(report.root_key, dir.join("root-ca.key"));
    assert_eq!(report.intermediate_cert, dir.join("intermediate-ca.pem"));
    assert_eq!(report.intermediate_key, dir.join("intermediate-ca.key"));
    assert_eq!(report.ca_bundle, dir.join("ca-bundle.pem"));
    for key in [&report.root_key, &report.intermediate_key] {
        assert_eq!(mode(key), 0o600, "{}", key.display());
        let text = fs::read_to_string(key).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    for cert in [
        &report.root_cert,
        &report.intermediate_cert,
        &report.ca_bundle,
    ] {
        assert_eq!(mode(cert), 0o644, "{}", cert.display());
        assert_eq!(certs(cert).len(), 1);
    }
    assert_eq!(
        fs::read(&report.ca_bundle).unwrap(),
        fs::read(&report.root_cert).unwrap()
    );
    let root = certs(&report.root_cert).remove(0);
    let int = certs(&report.intermediate_cert).remove(0);
    let (_, root) = X509Certificate::from_der(&root).unwrap();
    let (_, int) = X509Certificate::from_der(&int).unwrap();
    assert_eq!(int.issuer().as_raw(), root.subject().as_raw());
    int.verify_signature(Some(root.public_key())).unwrap();
    // Both CAs load back.
    Ca::from_pem(
        &fs::read_to_string(&report.root_cert).unwrap(),
        &fs::read_to_string(&report.root_key).unwrap(),
    )
    .unwrap();
    intermediate_from_dir(&dir).unwrap();
}

#[test]
fn init_refuses_to_overwrite_and_leaves_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let report = init_dir(tmp.path()).unwrap();
    let before = fs::read(&report.root_key).unwrap();
    let err = init_dir(tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to overwrite existing file `{}`",
            report.root_cert.display()
        )
    );
    assert_eq!(fs::read(&report.root_key).unwrap(), before);
}

#[test]
fn init_refuses_if_any_file_exists_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(CA_BUNDLE_FILE), "mine").unwrap();
    let err = init_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, PkiError::WouldOverwrite { .. }), "{err}");
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [CA_BUNDLE_FILE]);
    assert_eq!(
        fs::read_to_string(tmp.path().join(CA_BUNDLE_FILE)).unwrap(),
        "mine"
    );
}

#[test]
fn init_refuses_a_dangling_symlink_in_place_of_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, tmp.path().join(ROOT_KEY_FILE)).unwrap();
    let err = init_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, PkiError::WouldOverwrite { .. }), "{err}");
    assert!(!target.exists());
}

#[test]
fn issue_writes_full_chain_and_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let report = init_dir(tmp.path()).unwrap();
    let issued = issue_to_dir(tmp.path(), "web", &IssueRequest::client("web")).unwrap();
    assert_eq!(issued.cert, tmp.path().join("web.pem"));
    assert_eq!(issued.key, tmp.path().join("web.key"));
    assert_eq!(mode(&issued.cert), 0o644);
    assert_eq!(mode(&issued.key), 0o600);

    let chain = certs(&issued.cert);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], certs(&report.intermediate_cert)[0]);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, int) = X509Certificate::from_der(&chain[1]).unwrap();
    leaf.verify_signature(Some(int.public_key())).unwrap();
    assert_eq!(leaf.raw_serial(), issued.serial.as_slice());
    let cn = leaf.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "web");

    let key = rcgen::KeyPair::from_pem(&fs::read_to_string(&issued.key).unwrap()).unwrap();
    use rcgen::PublicKeyData;
    assert_eq!(key.subject_public_key_info(), leaf.public_key().raw);
}

#[test]
fn issue_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    init_dir(tmp.path()).unwrap();
    issue_to_dir(tmp.path(), "web", &IssueRequest::client("web")).unwrap();
    let before = fs::read(tmp.path().join("web.key")).unwrap();
    let err = issue_to_dir(tmp.path(), "web", &IssueRequest::client("web")).unwrap_err();
    assert!(matches!(err, PkiError::WouldOverwrite { .. }), "{err}");
    assert_eq!(fs::read(tmp.path().join("web.key")).unwrap(), before);
}

#[test]
fn issue_refuses_names_that_are_not_plain_file_names() {
    let tmp = tempfile::tempdir().unwrap();
    init_dir(tmp.path()).unwrap();
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for (name, reason) in [
        ("", "the name is empty"),
        ("../evil", "the name must not start with `.`"),
        (".hidden", "the name must not start with `.`"),
        (
            "a/b",
            "the name may only hold letters, digits, `.`, `-` and `_`",
        ),
        (
            "a b",
            "the name may only hold letters, digits, `.`, `-` and `_`",
        ),
        (long.as_str(), "the name is longer than 64 bytes"),
    ] {
        let err = issue_to_dir(tmp.path(), name, &IssueRequest::client("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid certificate name `{name}`: {reason}")
        );
    }
    let ok = "a".repeat(MAX_NAME_LEN);
    issue_to_dir(tmp.path(), &ok, &IssueRequest::client("x")).unwrap();
    assert!(!tmp.path().parent().unwrap().join("evil.pem").exists());
}

#[test]
fn issue_without_init_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = issue_to_dir(tmp.path(), "web", &IssueRequest::client("web")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "file `{}`: cannot read:",
            tmp.path().join(INTERMEDIATE_CERT_FILE).display()
        )),
        "{msg}"
    );
    assert!(!tmp.path().join("web.pem").exists());
    assert!(!tmp.path().join("web.key").exists());
}

#[test]
fn failed_issue_removes_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    init_dir(tmp.path()).unwrap();
    // `web.key` appears between the check and the write of the key: the
    // certificate written just before is removed again.
    let mut written = Written::default();
    written.cert(&tmp.path().join("partial.pem"), "x").unwrap();
    fs::write(tmp.path().join("partial.key"), "someone else's").unwrap();
    let err = written
        .key(&tmp.path().join("partial.key"), "secret")
        .unwrap_err();
    assert!(matches!(err, PkiError::WouldOverwrite { .. }), "{err}");
    drop(written);
    assert!(!tmp.path().join("partial.pem").exists());
    assert_eq!(
        fs::read_to_string(tmp.path().join("partial.key")).unwrap(),
        "someone else's"
    );
}

#[test]
fn issue_with_invalid_request_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    init_dir(tmp.path()).unwrap();
    let req = IssueRequest {
        emails: vec!["ü@example.org".into()],
        ..IssueRequest::client("x")
    };
    assert!(issue_to_dir(tmp.path(), "bad", &req).is_err());
    assert!(!tmp.path().join("bad.pem").exists());
    assert!(!tmp.path().join("bad.key").exists());
}
