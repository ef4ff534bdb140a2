//! `KeySource` against a real HTTPS identity provider on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{
    ec_key, eventually, fast_settings, join_all, jwks, kids, start_uri, BodyMode, Idp, Route,
    DISCOVERY_PATH, JWKS_PATH,
};
use portcullis_jwks::{JwksSource, KeySource, StartError, Unavailable};

fn last_error(src: &KeySource) -> String {
    src.status().last_error.unwrap_or_default()
}

// ------------------------------------------------------------- sources

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_fetch_via_discovery() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    idp.set_discovery(&idp.base(), &idp.url(JWKS_PATH));
    let src = KeySource::start(
        idp.base(),
        JwksSource::Discovery { issuer: idp.base() },
        fast_settings(idp.roots()),
    )
    .await
    .unwrap();
    let keys = src.current().unwrap();
    assert_eq!(kids(&keys), ["k1"]);
    assert_eq!(idp.count(DISCOVERY_PATH), 1);
    assert_eq!(idp.count(JWKS_PATH), 1);
    assert_eq!(src.status().version, Some(keys.version()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_trailing_slash_issuer() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    let issuer = format!("{}/", idp.base());
    idp.set_discovery(&issuer, &idp.url(JWKS_PATH));
    let src = KeySource::start(
        issuer.clone(),
        JwksSource::Discovery { issuer },
        fast_settings(idp.roots()),
    )
    .await
    .unwrap();
    assert_eq!(kids(&src.current().unwrap()), ["k1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_mismatching_issuer_refused() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    // The document claims another issuer (here: the same URL with a slash).
    idp.set_discovery(&format!("{}/", idp.base()), &idp.url(JWKS_PATH));
    let src = KeySource::start(
        idp.base(),
        JwksSource::Discovery { issuer: idp.base() },
        fast_settings(idp.roots()),
    )
    .await
    .unwrap();
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    assert_eq!(idp.count(DISCOVERY_PATH), 1);
    assert_eq!(idp.count(JWKS_PATH), 0);
    assert!(
        last_error(&src).contains("does not match"),
        "{}",
        last_error(&src)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_http_jwks_uri_refused() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    let http_jwks = format!("http://127.0.0.1:{}{JWKS_PATH}", idp.addr.port());
    idp.set_discovery(&idp.base(), &http_jwks);
    let src = KeySource::start(
        idp.base(),
        JwksSource::Discovery { issuer: idp.base() },
        fast_settings(idp.roots()),
    )
    .await
    .unwrap();
    assert!(src.current().is_err());
    assert_eq!(idp.count(JWKS_PATH), 0);
    assert!(
        last_error(&src).contains("http is not allowed"),
        "{}",
        last_error(&src)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_jwks_uri() {
    let k1 = ec_key("k1");
    let k2 = ec_key("k2");
    let idp = Idp::with_jwks(jwks(&[&k1, &k2])).await;
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    assert_eq!(kids(&src.current().unwrap()), ["k1", "k2"]);
    assert_eq!(idp.count(JWKS_PATH), 1);
    assert_eq!(idp.count(DISCOVERY_PATH), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_reread_on_change() {
    let (k1, k2, k3) = (ec_key("k1"), ec_key("k2"), ec_key("k3"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&k1])).unwrap();
    let settings = portcullis_jwks::FetchSettings {
        roots: None,
        min_refresh: Duration::from_millis(50),
        default_refresh: Duration::from_millis(100),
        ..fast_settings(Vec::new())
    };
    let src = KeySource::start("file".to_owned(), JwksSource::File(path.clone()), settings)
        .await
        .unwrap();
    assert_eq!(kids(&src.current().unwrap()), ["k1"]);

    // A change of size is seen at the next check.
    std::fs::write(&path, jwks(&[&k1, &k2])).unwrap();
    eventually("k2 read from the file", || {
        kids(&src.current().unwrap()) == ["k1", "k2"]
    })
    .await;

    // Same size and the old modification time (put in place atomically):
    // not re-read, although checks keep succeeding.
    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let same_size = jwks(&[&k1, &k3]);
    assert_eq!(
        same_size.len(),
        std::fs::metadata(&path).unwrap().len() as usize
    );
    let tmp = dir.path().join("jwks.json.tmp");
    std::fs::write(&tmp, &same_size).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let checks = src.status().fetches_ok;
    eventually("five more file checks", || {
        src.status().fetches_ok >= checks + 5
    })
    .await;
    assert_eq!(kids(&src.current().unwrap()), ["k1", "k2"]);

    // A new modification time: re-read.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old_mtime + Duration::from_secs(10))
        .unwrap();
    eventually("k3 read from the file", || {
        kids(&src.current().unwrap()) == ["k1", "k3"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_missing_file_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.json");
    let src = KeySource::start(
        "file".to_owned(),
        JwksSource::File(path),
        fast_settings(Vec::new()),
    )
    .await
    .unwrap();
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    assert!(
        last_error(&src).contains("cannot read key file"),
        "{}",
        last_error(&src)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_url_refused() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    idp.set_discovery(&idp.base(), &idp.url(JWKS_PATH));
    let plain = format!("http://127.0.0.1:{}", idp.addr.port());
    let err = KeySource::start(
        plain.clone(),
        JwksSource::Uri(format!("{plain}{JWKS_PATH}").parse().unwrap()),
        fast_settings(idp.roots()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::InsecureUrl { .. }), "{err}");
    let err = KeySource::start(
        plain.clone(),
        JwksSource::Discovery { issuer: plain },
        fast_settings(idp.roots()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::InsecureUrl { .. }), "{err}");
    assert_eq!(idp.count(JWKS_PATH), 0);
    assert_eq!(idp.count(DISCOVERY_PATH), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_certificate_refused() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    let other = portcullis_pki::Ca::new_root("some other ca").unwrap();
    let src = start_uri(&idp, fast_settings(vec![other.cert_der()])).await;
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    // Refused in the handshake: no request reached the server.
    assert_eq!(idp.count(JWKS_PATH), 0);
    let err = last_error(&src);
    assert!(err.contains("invalid peer certificate"), "{err}");
}

// ------------------------------------------------------- cache control

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_zero_refreshes_at_min_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    // default_refresh is an hour: only min_refresh explains more fetches.
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    eventually("four fetches", || idp.count(JWKS_PATH) >= 4).await;
    assert!(src.current().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_no_store_refreshes_at_min_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("no-store, max-age=86400"),
    );
    let _src = start_uri(&idp, fast_settings(idp.roots())).await;
    eventually("four fetches", || idp.count(JWKS_PATH) >= 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_huge_max_age_clamped_to_max_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("public, max-age=31536000"),
    );
    let settings = portcullis_jwks::FetchSettings {
        max_refresh: Duration::from_millis(300),
        ..fast_settings(idp.roots())
    };
    let _src = start_uri(&idp, settings).await;
    eventually("three fetches", || idp.count(JWKS_PATH) >= 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_delays_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=3600"),
    );
    // Without the header the source would refresh every 100 ms.
    let settings = portcullis_jwks::FetchSettings {
        default_refresh: Duration::from_millis(100),
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(idp.count(JWKS_PATH), 1);
    assert_eq!(src.status().fetches_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_control_refreshes_at_default_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    let settings = portcullis_jwks::FetchSettings {
        default_refresh: Duration::from_millis(150),
        ..fast_settings(idp.roots())
    };
    let _src = start_uri(&idp, settings).await;
    eventually("four fetches", || idp.count(JWKS_PATH) >= 4).await;
}

// ------------------------------------------------------------ rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_picks_up_rotated_key() {
    let (k1, k2) = (ec_key("k1"), ec_key("k2"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let v1 = src.current().unwrap().version();
    idp.update(JWKS_PATH, |r| r.body = jwks(&[&k1, &k2]));
    eventually("k2 fetched", || {
        kids(&src.current().unwrap()) == ["k1", "k2"]
    })
    .await;
    assert_ne!(src.current().unwrap().version(), v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_refresh_keeps_version_and_set() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let first = src.current().unwrap();
    eventually("three fetches", || src.status().fetches_ok >= 3).await;
    // Same content: the very same key set is kept (verified-token caches
    // keyed by version stay valid).
    assert!(Arc::ptr_eq(&first, &src.current().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_key_gone_after_refresh() {
    let (k1, k2) = (ec_key("k1"), ec_key("k2"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1, &k2])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let before = src.current().unwrap();
    assert_eq!(kids(&before), ["k1", "k2"]);
    idp.update(JWKS_PATH, |r| r.body = jwks(&[&k2]));
    eventually("k1 removed", || kids(&src.current().unwrap()) == ["k2"]).await;
    // The set was replaced whole, not merged.
    assert_eq!(src.current().unwrap().len(), 1);
}

// --------------------------------------------------------- unknown kid

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetch_happens_once() {
    let (k1, k2, k3) = (ec_key("k1"), ec_key("k2"), ec_key("k3"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=3600"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let v1 = src.current().unwrap().version();
    assert_eq!(idp.count(JWKS_PATH), 1);

    // The issuer rotated: a token signed with k2 triggers one refetch.
    idp.update(JWKS_PATH, |r| r.body = jwks(&[&k1, &k2]));
    let new = src.refresh_for_unknown_kid(v1).await.unwrap();
    assert_eq!(kids(&new), ["k1", "k2"]);
    assert_eq!(idp.count(JWKS_PATH), 2);
    let v2 = new.version();

    // Within the interval: no further fetch, whatever the callers do.
    idp.update(JWKS_PATH, |r| r.body = jwks(&[&k1, &k2, &k3]));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let src = Arc::clone(&src);
        tasks.spawn(async move { src.refresh_for_unknown_kid(v2).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().is_none());
    }
    for _ in 0..200 {
        assert!(src.refresh_for_unknown_kid(v2).await.is_none());
    }
    assert_eq!(idp.count(JWKS_PATH), 2);
    let status = src.status();
    assert_eq!(status.refetches_unknown_kid, 1);
    assert_eq!(status.refetches_rate_limited, 400);
    assert_eq!(status.version, Some(v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetch_allowed_again_after_interval() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=3600"),
    );
    let settings = portcullis_jwks::FetchSettings {
        unknown_kid_interval: Duration::from_secs(2),
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings).await;
    let v1 = src.current().unwrap().version();
    // Garbage kids: refetches find nothing new.
    assert!(src.refresh_for_unknown_kid(v1).await.is_none());
    assert_eq!(idp.count(JWKS_PATH), 2);
    assert!(src.refresh_for_unknown_kid(v1).await.is_none());
    assert_eq!(idp.count(JWKS_PATH), 2);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(src.refresh_for_unknown_kid(v1).await.is_none());
    assert_eq!(idp.count(JWKS_PATH), 3);
    assert_eq!(src.status().refetches_rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kid_callers_share_one_fetch() {
    let (k1, k2) = (ec_key("k1"), ec_key("k2"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=3600"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let v1 = src.current().unwrap().version();
    idp.update(JWKS_PATH, |r| {
        r.body = jwks(&[&k1, &k2]);
        r.gated = true;
    });
    idp.close_gate();
    // All 200 calls start before the (held) response can arrive.
    let calls: Vec<_> = (0..200).map(|_| src.refresh_for_unknown_kid(v1)).collect();
    let release = async {
        eventually("the refetch reached the server", || {
            idp.count(JWKS_PATH) == 2
        })
        .await;
        idp.open_gate();
    };
    let (results, ()) = tokio::join!(join_all(calls), release);
    for r in results {
        assert_eq!(kids(&r.unwrap()), ["k1", "k2"]);
    }
    assert_eq!(idp.count(JWKS_PATH), 2);
    assert_eq!(src.status().refetches_unknown_kid, 1);
    assert_eq!(src.status().refetches_rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_after_rotation_returns_new_keys_without_fetch() {
    let (k1, k2) = (ec_key("k1"), ec_key("k2"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=3600"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let v1 = src.current().unwrap().version();
    idp.update(JWKS_PATH, |r| r.body = jwks(&[&k1, &k2]));
    assert!(src.refresh_for_unknown_kid(v1).await.is_some());
    // A caller that still looked at v1: the keys changed since, so it gets
    // them, rate limit or not, without another request.
    let again = src.refresh_for_unknown_kid(v1).await.unwrap();
    assert_eq!(kids(&again), ["k1", "k2"]);
    assert_eq!(idp.count(JWKS_PATH), 2);
    assert_eq!(src.status().refetches_rate_limited, 0);
}

// ------------------------------------------------------------- outages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_keeps_last_good_keys() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let v1 = src.current().unwrap().version();

    // Connections closed without an answer.
    idp.set_down(true);
    eventually("two failed fetches", || src.status().fetches_failed >= 2).await;
    assert_eq!(src.current().unwrap().version(), v1);

    // Server errors.
    idp.set_down(false);
    idp.update(JWKS_PATH, |r| r.status = 503);
    let failed = src.status().fetches_failed;
    eventually("two more failed fetches", || {
        src.status().fetches_failed >= failed + 2
    })
    .await;
    assert!(
        last_error(&src).contains("status 503"),
        "{}",
        last_error(&src)
    );
    assert_eq!(src.current().unwrap().version(), v1);

    // Timeouts.
    idp.update(JWKS_PATH, |r| {
        r.status = 200;
        r.delay = Duration::from_secs(60);
    });
    let failed = src.status().fetches_failed;
    eventually("a timed out fetch", || src.status().fetches_failed > failed).await;
    assert!(
        last_error(&src).contains("did not finish"),
        "{}",
        last_error(&src)
    );
    assert_eq!(src.current().unwrap().version(), v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_max_staleness_current_refuses() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let settings = portcullis_jwks::FetchSettings {
        max_staleness: Duration::from_millis(500),
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings).await;
    assert!(src.current().is_ok());
    idp.set_down(true);
    eventually("keys stale", || {
        matches!(src.current(), Err(Unavailable::Stale { .. }))
    })
    .await;
    let err = src.current().unwrap_err().to_string();
    assert!(err.contains("stale"), "{err}");
    // The key set itself is still reported, only not handed out.
    assert_eq!(src.status().key_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_idp_returns() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    idp.set_down(true);
    let settings = portcullis_jwks::FetchSettings {
        max_staleness: Duration::from_millis(500),
        // Keep the backoff short so retries continue.
        default_refresh: Duration::from_millis(200),
        ..fast_settings(idp.roots())
    };
    // Starts empty while the issuer is down, and retries in the background.
    let src = start_uri(&idp, settings).await;
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    idp.set_down(false);
    eventually("keys after recovery", || src.current().is_ok()).await;
    assert_eq!(src.status().consecutive_failures, 0);

    // Stale, then recovered again.
    idp.set_down(true);
    eventually("keys stale", || {
        matches!(src.current(), Err(Unavailable::Stale { .. }))
    })
    .await;
    idp.set_down(false);
    eventually("keys after second recovery", || src.current().is_ok()).await;
    assert_eq!(kids(&src.current().unwrap()), ["k1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_jwks_does_not_replace_good_one() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    let good = src.current().unwrap();
    let mut private = k1.jwk.clone();
    private["d"] = serde_json::json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let bad_bodies = [
        Bytes::from_static(b"not json"),
        Bytes::from_static(br#"{"keys": []}"#),
        Bytes::from_static(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
        Bytes::from(serde_json::json!({ "keys": [private] }).to_string()),
        Bytes::from_static(b"<html>maintenance</html>"),
    ];
    for body in bad_bodies {
        idp.update(JWKS_PATH, |r| r.body = body.clone());
        let failed = src.status().fetches_failed;
        eventually("a failed fetch", || src.status().fetches_failed > failed).await;
        assert!(
            last_error(&src).contains("invalid jwks"),
            "{}",
            last_error(&src)
        );
        assert!(Arc::ptr_eq(&good, &src.current().unwrap()));
    }
}

// --------------------------------------------------------------- bounds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_refused() {
    let k1 = ec_key("k1");
    let mut body = jwks(&[&k1]).to_vec();
    body.resize(2000, b' ');
    let idp = Idp::with_jwks(Bytes::from(body.clone())).await;
    let settings = portcullis_jwks::FetchSettings {
        max_body_bytes: 1024,
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings.clone()).await;
    assert!(src.current().is_err());
    assert!(
        last_error(&src).contains("exceeds 1024 bytes"),
        "{}",
        last_error(&src)
    );

    // Without Content-Length the body is cut while it streams.
    idp.update(JWKS_PATH, |r| r.mode = BodyMode::Streamed);
    let src = start_uri(&idp, settings.clone()).await;
    assert!(src.current().is_err());
    assert!(
        last_error(&src).contains("exceeds 1024 bytes"),
        "{}",
        last_error(&src)
    );

    // The same body is accepted under a larger limit.
    let settings = portcullis_jwks::FetchSettings {
        max_body_bytes: 2000,
        ..settings
    };
    let src = start_uri(&idp, settings).await;
    assert_eq!(kids(&src.current().unwrap()), ["k1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_body_aborted_at_limit() {
    let idp = Idp::with_jwks(Bytes::new()).await;
    idp.update(JWKS_PATH, |r| r.mode = BodyMode::Endless);
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    assert!(src.current().is_err());
    // Refused for its size, long before the fetch timeout.
    let err = last_error(&src);
    assert!(err.contains("exceeds 262144 bytes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_beyond_fetch_timeout_refused() {
    let k1 = ec_key("k1");
    let idp = Idp::with_jwks(jwks(&[&k1])).await;
    idp.update(JWKS_PATH, |r| r.delay = Duration::from_secs(60));
    let settings = portcullis_jwks::FetchSettings {
        fetch_timeout: Duration::from_millis(300),
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings.clone()).await;
    assert!(matches!(
        src.current(),
        Err(Unavailable::NeverFetched { .. })
    ));
    assert!(
        last_error(&src).contains("did not finish within 300ms"),
        "{}",
        last_error(&src)
    );

    // Headers in time, body never: the timeout covers the body too.
    idp.update(JWKS_PATH, |r| {
        r.delay = Duration::ZERO;
        r.mode = BodyMode::Stall;
    });
    let src = start_uri(&idp, settings).await;
    assert!(src.current().is_err());
    assert!(
        last_error(&src).contains("did not finish within 300ms"),
        "{}",
        last_error(&src)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_not_followed() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set("/real-jwks", Route::ok(jwks(&[&k1])));
    let mut redirect = Route::ok(Bytes::new());
    redirect.status = 302;
    redirect.location = Some(idp.url("/real-jwks"));
    idp.set(JWKS_PATH, redirect);
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    assert!(src.current().is_err());
    assert_eq!(idp.count(JWKS_PATH), 1);
    assert_eq!(idp.count("/real-jwks"), 0);
    assert!(
        last_error(&src).contains("redirect (status 302)"),
        "{}",
        last_error(&src)
    );
}

// --------------------------------------------------------------- status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counters() {
    let (k1, k2) = (ec_key("k1"), ec_key("k2"));
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1, &k2])).cache_control("max-age=3600"),
    );
    // No retry inside the test: the first one is an hour away.
    let settings = portcullis_jwks::FetchSettings {
        min_refresh: Duration::from_secs(3600),
        ..fast_settings(idp.roots())
    };
    let src = start_uri(&idp, settings).await;
    let s = src.status();
    assert_eq!(s.fetches_ok, 1);
    assert_eq!(s.fetches_failed, 0);
    assert_eq!(s.key_count, 2);
    assert_eq!(s.version, Some(src.current().unwrap().version()));
    assert!(s.last_success.is_some());
    assert_eq!(s.last_error, None);
    assert_eq!(s.consecutive_failures, 0);

    // One failed unknown-kid refetch, then rate limited.
    idp.update(JWKS_PATH, |r| r.status = 500);
    let v = s.version.unwrap();
    assert!(src.refresh_for_unknown_kid(v).await.is_none());
    assert!(src.refresh_for_unknown_kid(v).await.is_none());
    let s = src.status();
    assert_eq!(s.fetches_ok, 1);
    assert_eq!(s.fetches_failed, 1);
    assert_eq!(s.consecutive_failures, 1);
    assert_eq!(s.refetches_unknown_kid, 1);
    assert_eq!(s.refetches_rate_limited, 1);
    assert!(s.last_error.as_deref().unwrap().contains("status 500"));
    assert!(s.last_error_at.is_some());
    // The keys are still served.
    assert_eq!(s.key_count, 2);
    assert!(src.current().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_do_not_show_url_query() {
    let idp = Idp::start().await;
    let uri: http::Uri = idp.url("/jwks?token=hunter2").parse().unwrap();
    let src = KeySource::start(
        idp.base(),
        JwksSource::Uri(uri.clone()),
        fast_settings(idp.roots()),
    )
    .await
    .unwrap();
    // 404: the route does not exist.
    let err = last_error(&src);
    assert!(err.contains("status 404"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!format!("{src:?}").contains("hunter2"));
    assert!(!format!("{:?}", JwksSource::Uri(uri)).contains("hunter2"));
}

// ------------------------------------------------------------ lifecycle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_source_stops_refresh() {
    let k1 = ec_key("k1");
    let idp = Idp::start().await;
    idp.set(
        JWKS_PATH,
        Route::ok(jwks(&[&k1])).cache_control("max-age=0"),
    );
    let src = start_uri(&idp, fast_settings(idp.roots())).await;
    eventually("refreshing", || idp.count(JWKS_PATH) >= 3).await;
    drop(src);
    // Let a fetch that was already on its way land.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after_drop = idp.count(JWKS_PATH);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(idp.count(JWKS_PATH), after_drop);
}
