//! Without a configured CA bundle the operating system's store is used.
//! Alone in its binary: it points `SSL_CERT_FILE` (honoured by the system
//! store loader) at the test CA, which is process-wide.

mod common;

use common::{ec_key, fast_settings, jwks, kids, Idp, JWKS_PATH};
use portcullis_jwks::{FetchSettings, JwksSource, KeySource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_store_is_used_without_ca_bundle() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    let settings = FetchSettings {
        roots: None,
        ..fast_settings(Vec::new())
    };

    // A system store without the test CA: the server is not trusted.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let other_ca = portcullis_pki::Ca::new_root("unrelated ca").unwrap();
    std::fs::write(&other, other_ca.cert_pem()).unwrap();
    std::env::remove_var("SSL_CERT_DIR");
    std::env::set_var("SSL_CERT_FILE", &other);
    let src = KeySource::start(
        idp.base(),
        JwksSource::Uri(idp.uri(JWKS_PATH)),
        settings.clone(),
    )
    .await
    .unwrap();
    assert!(src.current().is_err());
    let err = src.status().last_error.unwrap_or_default();
    assert!(err.contains("invalid peer certificate"), "{err}");

    // A system store with the test CA: trusted.
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, idp.ca.cert_pem()).unwrap();
    std::env::set_var("SSL_CERT_FILE", &bundle);
    let src = KeySource::start(idp.base(), JwksSource::Uri(idp.uri(JWKS_PATH)), settings)
        .await
        .unwrap();
    assert_eq!(kids(&src.current().unwrap()), ["k1"]);
}
