use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::*;

fn write_jwks(path: &Path, kid: &str) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let doc = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    std::fs::write(path, doc.to_string()).unwrap();
}

fn fast() -> FetchSettings {
    FetchSettings {
        min_refresh: Duration::from_millis(20),
        default_refresh: Duration::from_millis(20),
        ..FetchSettings::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn refresh_task_ends_when_source_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    write_jwks(&path, "k1");
    let src = KeySource::start("t".to_owned(), JwksSource::File(path), fast())
        .await
        .unwrap();
    let weak = Arc::downgrade(&src.inner);
    eventually("a few checks", || src.status().fetches_ok >= 3).await;
    drop(src);
    // Only the refresh task (and a fetch it started) held the state.
    eventually("state released", || weak.upgrade().is_none()).await;
}

#[tokio::test]
async fn abandoned_fetch_does_not_block_later_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    write_jwks(&path, "k1");
    let src = KeySource::start(
        "t".to_owned(),
        JwksSource::File(path),
        FetchSettings::default(),
    )
    .await
    .unwrap();
    // A fetch task that ends without finishing its work still clears the
    // in-flight marker and wakes its waiters.
    let (tx, mut rx) = watch::channel(false);
    src.inner.lock().inflight = Some(rx.clone());
    drop(FlightGuard {
        inner: Arc::clone(&src.inner),
        done: tx,
    });
    assert!(src.inner.lock().inflight.is_none());
    assert!(*rx.borrow_and_update());
}

#[tokio::test]
async fn stale_and_never_fetched_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let settings = FetchSettings {
        max_staleness: Duration::from_millis(200),
        ..FetchSettings::default()
    };
    let src = KeySource::start("t".to_owned(), JwksSource::File(path.clone()), settings)
        .await
        .unwrap();
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    write_jwks(&path, "k1");
    let done = src.inner.begin(Trigger::Scheduled).unwrap();
    wait(done).await;
    assert!(src.current().is_ok());
    // Default refresh is minutes away: nothing refreshes the success time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = src.current().unwrap_err();
    assert!(matches!(err, Unavailable::Stale { .. }), "{err}");
    assert!(err.to_string().contains("`t`"));
}
