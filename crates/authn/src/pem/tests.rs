use std::fs;

use portcullis_pki::{Ca, IssueRequest};

use super::*;

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, content).unwrap();
    path
}

#[test]
fn certificates_load_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root").unwrap();
    let int = root.new_intermediate("Int").unwrap();
    let leaf = int.issue(&IssueRequest::client("x")).unwrap();
    let text = format!("some comment\n{}{}", leaf.cert_pem, int.cert_pem());
    let path = write(&tmp, "chain.pem", text.as_bytes());
    let certs = load_certs(&path).unwrap();
    assert_eq!(certs, [leaf.certificate_der(), int.cert_der()]);
}

#[test]
fn empty_file_holds_no_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(&tmp, "ca.pem", b"");
    let err = load_certs(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("file `{}` holds no certificate", path.display())
    );
    assert_eq!(err.path(), path);
}

#[test]
fn key_file_holds_no_certificate_and_cert_file_no_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root").unwrap();
    let key = write(&tmp, "k.pem", root.key_pem().as_bytes());
    let cert = write(&tmp, "c.pem", root.cert_pem().as_bytes());
    assert_eq!(
        load_certs(&key).unwrap_err().to_string(),
        format!("file `{}` holds no certificate", key.display())
    );
    assert_eq!(
        load_key(&cert).unwrap_err().to_string(),
        format!("file `{}` holds no private key", cert.display())
    );
    assert_eq!(
        load_crls(&cert).unwrap_err().to_string(),
        format!(
            "file `{}` holds no certificate revocation list",
            cert.display()
        )
    );
}

#[test]
fn missing_file_says_it_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.pem");
    for err in [
        load_certs(&path).unwrap_err(),
        load_key(&path).unwrap_err(),
        load_crls(&path).unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            format!(
                "file `{}`: cannot read: No such file or directory",
                path.display()
            )
        );
    }
}

#[test]
fn directory_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_certs(tmp.path()).unwrap_err();
    assert!(matches!(err, PemError::Read { .. }), "{err}");
}

#[test]
fn broken_base64_is_malformed_and_not_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "c2VjcmV0LWtleS1ieXRlcw%%%%";
    let text = format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n");
    let path = write(&tmp, "k.pem", text.as_bytes());
    let err = load_key(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "file `{}`: malformed pem: a section is not valid base64",
            path.display()
        )
    );
    assert!(!msg.contains("c2VjcmV0"));
    assert!(!format!("{err:?}").contains("c2VjcmV0"));
}

#[test]
fn missing_end_marker_is_malformed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root").unwrap();
    let text = root.cert_pem().replace("-----END CERTIFICATE-----", "");
    let path = write(&tmp, "ca.pem", text.as_bytes());
    assert_eq!(
        load_certs(&path).unwrap_err().to_string(),
        format!(
            "file `{}`: malformed pem: a section has no end marker",
            path.display()
        )
    );
}

#[test]
fn one_private_key_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root").unwrap();
    let leaf = root.issue(&IssueRequest::client("x")).unwrap();
    // A key file may carry the certificate too; only keys count.
    let text = format!("{}{}", leaf.cert_pem, leaf.key_pem.as_str());
    let path = write(&tmp, "k.pem", text.as_bytes());
    let key = load_key(&path).unwrap();
    assert_eq!(key.secret_der(), leaf.private_key_der().secret_der());
}

#[test]
fn two_private_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Ca::new_root("A").unwrap();
    let b = Ca::new_root("B").unwrap();
    let text = format!("{}{}", a.key_pem().as_str(), b.key_pem().as_str());
    let path = write(&tmp, "k.pem", text.as_bytes());
    assert_eq!(
        load_key(&path).unwrap_err().to_string(),
        format!("file `{}` holds more than one private key", path.display())
    );
}

#[test]
fn encrypted_key_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let path = write(&tmp, "k.pem", text.as_bytes());
    let err = load_key(&path).unwrap_err();
    assert!(matches!(err, PemError::EncryptedKey { .. }), "{err}");
}

#[test]
fn crls_load() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root").unwrap();
    let int = root.new_intermediate("Int").unwrap();
    let a = root.crl(&[], std::time::Duration::from_secs(60)).unwrap();
    let b = int
        .crl(&[vec![1, 2, 3]], std::time::Duration::from_secs(60))
        .unwrap();
    let path = write(&tmp, "crls.pem", format!("{a}{b}").as_bytes());
    assert_eq!(load_crls(&path).unwrap().len(), 2);
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("big.pem");
    let file = fs::File::create(&path).unwrap();
    // Sparse: no disk space is used.
    file.set_len(MAX_PEM_FILE_BYTES + 1).unwrap();
    assert_eq!(
        load_certs(&path).unwrap_err().to_string(),
        format!(
            "file `{}` is larger than {MAX_PEM_FILE_BYTES} bytes",
            path.display()
        )
    );
}

#[test]
fn io_reason_drops_the_os_error_number() {
    let e = std::io::Error::from_raw_os_error(2);
    assert_eq!(io_reason(&e), "No such file or directory");
    let custom = std::io::Error::other("plain");
    assert_eq!(io_reason(&custom), "plain");
}
