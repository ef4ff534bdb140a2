use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_session::{EmbeddedOptions, EmbeddedStore, SessionId};
use serde_json::{json, Map};
use zeroize::Zeroizing;

use super::*;

/// A token endpoint answering by refresh token, recording every call.
#[derive(Default)]
struct FakeEndpoint {
    answers: Mutex<HashMap<String, (StatusCode, Value)>>,
    calls: Mutex<Vec<String>>,
    /// How long each answer takes.
    delay: Mutex<Option<std::time::Duration>>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    /// Run while an ID token is being verified: something that changes
    /// the session meanwhile.
    during_verify: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl FakeEndpoint {
    fn answer(&self, token: &str, status: StatusCode, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), (status, body));
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl RefreshEndpoint for FakeEndpoint {
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = TokenAnswer> + Send + 'a>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.lock().unwrap().push(refresh_token.to_owned());
        let answer = self.answers.lock().unwrap().get(refresh_token).cloned();
        let delay = *self.delay.lock().unwrap();
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            self.in_flight.fetch_sub(1, SeqCst);
            answer.ok_or_else(|| "no answer configured".to_owned())
        })
    }

    /// Test ID tokens are JSON: `{"iss", "sub", ...claims}`; anything else
    /// fails verification.
    fn verify_id_token<'a>(
        &'a self,
        id_token: &'a str,
    ) -> Pin<Box<dyn Future<Output = IdTokenVerdict> + Send + 'a>> {
        let during = self.during_verify.lock().unwrap().take();
        let verdict = match serde_json::from_str::<Map<String, Value>>(id_token) {
            Ok(claims) => Ok(RefreshedIdToken {
                issuer: claims["iss"].as_str().unwrap().to_owned(),
                subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
                claims,
            }),
            Err(_) if id_token == "expired" => Err(crate::browser::IdTokenRefusal {
                code: "login_id_token_invalid",
                detail: "expired".to_owned(),
                transient: true,
            }),
            Err(_) => Err(crate::browser::IdTokenRefusal {
                code: "login_id_token_invalid",
                detail: "bad signature".to_owned(),
                transient: false,
            }),
        };
        Box::pin(async move {
            if let Some(during) = during {
                during.await;
            }
            verdict
        })
    }
}

struct Rig {
    refresher: Refresher,
    endpoint: Arc<FakeEndpoint>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

fn rig(per_round: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store =
        EmbeddedStore::open(&dir.path().join("s.redb"), EmbeddedOptions::default()).unwrap();
    let sealer = Sealer::new(vec![("k1".into(), Zeroizing::new(vec![3u8; 32]))]).unwrap();
    let endpoint = Arc::new(FakeEndpoint::default());
    let metrics = Arc::new(Metrics::new());
    Rig {
        refresher: Refresher {
            store: Arc::new(store),
            sealer: Arc::new(sealer),
            endpoint: endpoint.clone(),
            metrics: metrics.clone(),
            per_round,
        },
        endpoint,
        metrics,
        _dir: dir,
    }
}

impl Rig {
    /// A live session created `age` seconds ago whose provider tokens are
    /// due for a refresh now, with refresh token `token`.
    async fn session(&self, token: &str, age: i64, due_in: i64) -> SessionKey {
        let t = now();
        let key = SessionId::generate().unwrap().key();
        let s = Session {
            key,
            issuer: "https://idp.example.com".into(),
            subject: token.into(),
            claims: Map::new(),
            amr: vec![],
            acr: None,
            auth_time: t - age,
            mfa_time: None,
            bound_thumbprint: None,
            refresh_token: Some(self.refresher.sealer.seal(&key, token.as_bytes()).unwrap()),
            provider_token_expires_at: Some(t + due_in),
            created_at: t - age,
            last_seen: t,
            expires_at: t + 3600,
            idle_secs: 600,
            revoked: false,
            version: 1,
        };
        self.refresher.store.create(&s).await.unwrap();
        key
    }

    async fn get(&self, key: &SessionKey) -> Session {
        self.refresher.store.get(key).await.unwrap().unwrap()
    }
}

fn ok(refresh: &str) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({ "access_token": "at", "refresh_token": refresh, "expires_in": 300 }),
    )
}

#[tokio::test]
async fn sessions_older_than_one_rounds_budget_are_refreshed_and_revoked() {
    let r = rig(2);
    // The oldest session's user was revoked at the provider; many newer
    // sessions are due too, more than one round's budget.
    let old = r.session("old", 3000, -5).await;
    r.endpoint.answer(
        "old",
        StatusCode::BAD_REQUEST,
        json!({ "error": "invalid_grant" }),
    );
    let mut newer = Vec::new();
    for i in 0..5 {
        let token = format!("new{i}");
        newer.push(r.session(&token, 10 - i, 30).await);
        let (status, body) = ok(&format!("{token}-2"));
        r.endpoint.answer(&token, status, body);
    }
    r.refresher.round().await.unwrap();
    // Due first, whatever its age: the oldest session is in the first round.
    assert_eq!(r.endpoint.calls().first().map(String::as_str), Some("old"));
    assert_eq!(r.endpoint.calls().len(), 2, "at most the budget per round");
    assert!(r.get(&old).await.revoked);
    for _ in 0..3 {
        r.refresher.round().await.unwrap();
    }
    let t = now();
    for key in &newer {
        let s = r.get(key).await;
        assert!(!s.revoked);
        assert!(s.provider_token_expires_at.unwrap() >= t + 290, "refreshed");
    }
    assert_eq!(
        r.endpoint.calls().len(),
        6,
        "each session once: {:?}",
        r.endpoint.calls()
    );
    // Nothing is due any more.
    r.refresher.round().await.unwrap();
    assert_eq!(r.endpoint.calls().len(), 6);
}

#[tokio::test]
async fn revoked_and_ended_sessions_do_not_use_the_budget() {
    let r = rig(1);
    for i in 0..3 {
        let key = r.session(&format!("revoked{i}"), 100, -30).await;
        r.refresher.store.revoke(&key).await.unwrap();
    }
    // Ended by the idle timeout, not revoked.
    let idle = r.session("idle", 100, -20).await;
    let s = r.get(&idle).await;
    let mut ended = s.clone();
    ended.last_seen = now() - 700;
    ended.version = 2;
    r.refresher.store.compare_and_set(&ended, 1).await.unwrap();
    let live = r.session("live", 10, -10).await;
    let (status, body) = ok("live-2");
    r.endpoint.answer("live", status, body);

    r.refresher.round().await.unwrap();
    assert_eq!(r.endpoint.calls(), ["live"]);
    assert!(r.get(&live).await.provider_token_expires_at.unwrap() > now() + 200);
    // The ended session left the schedule with its refresh token.
    let gone = r.get(&idle).await;
    assert_eq!(gone.refresh_token, None);
    assert_eq!(gone.provider_token_expires_at, None);
    assert_eq!(
        r.refresher
            .store
            .due_for_refresh(now() + 1000, 100)
            .await
            .unwrap(),
        vec![live]
    );
}

#[tokio::test]
async fn a_refusal_of_the_gateways_client_keeps_the_session_and_is_retried() {
    for code in ["invalid_client", "unauthorized_client", "invalid_request"] {
        let r = rig(100);
        // More due sessions than refreshes run at once.
        let n = CONCURRENT_REFRESHES + 4;
        let mut keys = Vec::new();
        for i in 0..n {
            let token = format!("s{i}");
            keys.push(r.session(&token, 100, -5).await);
            r.endpoint
                .answer(&token, StatusCode::UNAUTHORIZED, json!({ "error": code }));
        }
        let err = r.refresher.round().await.unwrap_err();
        assert!(err.contains(code), "{err}");
        // Kept, and the round stopped: the same client fails for everyone.
        // The refreshes under way finished; no other one started.
        for key in &keys {
            assert!(!r.get(key).await.revoked, "{code}");
        }
        let called = r.endpoint.calls();
        assert_eq!(called.len(), CONCURRENT_REFRESHES, "{code}: {called:?}");
        // Retried after the lease, like a provider error.
        for (i, key) in keys.iter().enumerate() {
            let due = r.get(key).await.provider_token_expires_at.unwrap();
            if called.contains(&format!("s{i}")) {
                assert!(due > now() + REFRESH_MARGIN_SECS, "{code}");
                assert!(
                    due <= now() + REFRESH_LEASE_SECS + REFRESH_MARGIN_SECS,
                    "{code}"
                );
            } else {
                assert!(due < now(), "{code}: not claimed, still due");
            }
        }
        assert!(r.metrics.encode().contains(&format!(
            "provider_refresh_failures_total{{reason=\"{code}\"}} {CONCURRENT_REFRESHES}"
        )));
        // Once the client is fixed, the next round refreshes the others.
        for i in 0..n {
            let token = format!("s{i}");
            let (status, body) = ok(&format!("{token}-2"));
            r.endpoint.answer(&token, status, body);
        }
        r.refresher.round().await.unwrap();
        assert_eq!(r.endpoint.calls().len(), n, "{code}");
        for (i, key) in keys.iter().enumerate() {
            if !called.contains(&format!("s{i}")) {
                assert!(r.get(key).await.provider_token_expires_at.unwrap() > now() + 200);
            }
        }
    }
}

#[tokio::test]
async fn a_round_refreshes_several_sessions_at_once_and_no_more_than_the_bound() {
    use std::sync::atomic::Ordering::SeqCst;
    let r = rig(1000);
    *r.endpoint.delay.lock().unwrap() = Some(std::time::Duration::from_millis(50));
    let n = 3 * CONCURRENT_REFRESHES;
    let mut keys = Vec::new();
    for i in 0..n {
        let token = format!("s{i}");
        keys.push(r.session(&token, 100, -5).await);
        let (status, body) = ok(&format!("{token}-2"));
        r.endpoint.answer(&token, status, body);
    }
    r.refresher.round().await.unwrap();
    assert_eq!(r.endpoint.calls().len(), n);
    let most = r.endpoint.most_in_flight.load(SeqCst);
    assert!(
        most > 1 && most <= CONCURRENT_REFRESHES,
        "{most} refreshes at once"
    );
    for key in &keys {
        assert!(r.get(key).await.provider_token_expires_at.unwrap() > now() + 200);
    }
}

#[tokio::test]
async fn only_invalid_grant_ends_a_session() {
    let r = rig(10);
    let gone = r.session("gone", 100, -5).await;
    r.endpoint.answer(
        "gone",
        StatusCode::BAD_REQUEST,
        json!({ "error": "invalid_grant" }),
    );
    let down = r.session("down", 100, -4).await;
    r.endpoint.answer(
        "down",
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": "temporarily_unavailable" }),
    );
    r.refresher.round().await.unwrap();
    assert!(r.get(&gone).await.revoked);
    assert!(!r.get(&down).await.revoked);
}

#[tokio::test]
async fn sessions_past_their_absolute_end_are_removed_after_a_round() {
    let r = rig(10);
    let live = r.session("live", 10, 300).await;
    let ended = r.session("ended", 10, 300).await;
    // Its absolute end passes, written as the gateway writes sessions.
    let mut s = r.get(&ended).await;
    let expected = s.version;
    s.expires_at = now() - 1;
    s.version += 1;
    assert!(matches!(
        r.refresher
            .store
            .compare_and_set(&s, expected)
            .await
            .unwrap(),
        CasOutcome::Updated
    ));
    r.refresher.collect().await;
    assert!(r.refresher.store.get(&ended).await.unwrap().is_none());
    assert!(r.refresher.store.get(&live).await.unwrap().is_some());
}

#[tokio::test]
async fn a_refresh_answer_without_expires_in_keeps_the_session_on_the_schedule() {
    let r = rig(10);
    let key = r.session("t1", 10, -5).await;
    r.endpoint.answer(
        "t1",
        StatusCode::OK,
        json!({ "access_token": "at", "refresh_token": "t2" }),
    );
    let before = now();
    r.refresher.round().await.unwrap();
    assert_eq!(r.endpoint.calls(), ["t1"]);
    // Re-verified again at the default pace, not never.
    let due = r
        .get(&key)
        .await
        .refresh_due()
        .expect("still on the schedule");
    assert!(
        due >= before + crate::browser::DEFAULT_PROVIDER_TOKEN_SECS
            && due <= now() + crate::browser::DEFAULT_PROVIDER_TOKEN_SECS,
        "{due}"
    );
}

#[tokio::test]
async fn a_refreshed_id_token_brings_the_users_claims_as_they_are_now() {
    let r = rig(10);
    let key = r.session("bob", 100, -5).await;
    let id_token = json!({
        "iss": "https://idp.example.com", "sub": "bob", "groups": ["contractors"]
    });
    r.endpoint.answer(
        "bob",
        StatusCode::OK,
        json!({ "access_token": "at", "refresh_token": "bob-2", "expires_in": 300,
                "id_token": id_token.to_string() }),
    );
    let before = r.get(&key).await;
    r.refresher.round().await.unwrap();
    let s = r.get(&key).await;
    assert!(!s.revoked);
    assert_eq!(s.claims.get("groups"), Some(&json!(["contractors"])));
    // Not a new authentication: what the session knows of that stays.
    assert_eq!(
        (s.auth_time, &s.amr, s.mfa_time),
        (before.auth_time, &before.amr, before.mfa_time)
    );
}

#[tokio::test]
async fn a_refreshed_id_token_that_fails_or_names_another_user_ends_the_session() {
    let r = rig(10);
    let cases = [
        ("forged", json!("not-json: bad signature")),
        (
            "other-user",
            json!(json!({ "iss": "https://idp.example.com", "sub": "mallory" }).to_string()),
        ),
        (
            "no-sub",
            json!(json!({ "iss": "https://idp.example.com" }).to_string()),
        ),
        (
            "other-iss",
            json!(json!({ "iss": "https://evil.example", "sub": "other-iss" }).to_string()),
        ),
        ("not-text", json!(42)),
    ];
    let mut keys = Vec::new();
    for (name, id_token) in &cases {
        keys.push(r.session(name, 100, -5).await);
        r.endpoint.answer(
            name,
            StatusCode::OK,
            json!({ "access_token": "at", "refresh_token": format!("{name}-2"), "expires_in": 300,
                    "id_token": id_token }),
        );
    }
    r.refresher.round().await.unwrap();
    for ((name, _), key) in cases.iter().zip(&keys) {
        let s = r.get(key).await;
        assert!(s.revoked, "{name}");
        assert!(s.claims.is_empty(), "{name}: claims taken over");
    }
    let text = r.metrics.encode();
    assert!(
        text.contains("portcullis_provider_refresh_failures_total{reason=\"id_token_invalid\"} 5"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refreshed_id_token_that_cannot_be_verified_now_keeps_the_session_and_its_claims() {
    // Keys unavailable, the token's key not yet published, clocks apart:
    // the session keeps its claims and the rotated refresh token, and the
    // claims are checked again at the next refresh.
    let r = rig(10);
    let key = r.session("bob", 100, -5).await;
    r.endpoint.answer(
        "bob",
        StatusCode::OK,
        json!({ "access_token": "at", "refresh_token": "bob-2", "expires_in": 300,
                "id_token": "expired" }),
    );
    let (status, body) = ok("bob-3");
    r.endpoint.answer("bob-2", status, body);
    r.refresher.round().await.unwrap();
    let s = r.get(&key).await;
    assert!(!s.revoked);
    assert!(s.claims.is_empty(), "claims kept as they were");
    assert!(s.provider_token_expires_at.unwrap() > now() + 200);
    let sealed = s.refresh_token.as_ref().unwrap();
    let stored = r.refresher.sealer.open(&key, sealed).unwrap();
    assert_eq!(&stored[..], b"bob-2", "the rotated refresh token is kept");
    assert!(r
        .metrics
        .encode()
        .contains("portcullis_provider_refresh_failures_total{reason=\"id_token_unverified\"} 1"));
}

#[tokio::test]
async fn a_step_up_during_a_refresh_keeps_its_own_newer_claims() {
    let r = rig(10);
    let key = r.session("bob", 100, -5).await;
    let id_token = json!({
        "iss": "https://idp.example.com", "sub": "bob", "groups": ["from-the-refreshed-grant"]
    });
    r.endpoint.answer(
        "bob",
        StatusCode::OK,
        json!({ "access_token": "at", "refresh_token": "bob-2", "expires_in": 300,
                "id_token": id_token.to_string() }),
    );
    // While the refresh's ID token is verified, the user completes a
    // step-up login: a new authentication, with its own claims.
    let store = Arc::clone(&r.refresher.store);
    *r.endpoint.during_verify.lock().unwrap() = Some(Box::pin(async move {
        let cur = store.get(&key).await.unwrap().unwrap();
        let mut next = cur.clone();
        next.auth_time = now();
        next.mfa_time = Some(next.auth_time);
        next.amr = vec!["otp".into()];
        next.claims = Map::from_iter([("groups".to_owned(), json!(["from-the-step-up"]))]);
        next.version = cur.version + 1;
        store.compare_and_set(&next, cur.version).await.unwrap();
    }));
    r.refresher.round().await.unwrap();
    let s = r.get(&key).await;
    assert!(!s.revoked);
    assert_eq!(
        s.claims.get("groups"),
        Some(&json!(["from-the-step-up"])),
        "the newer login's claims stay"
    );
    assert_eq!(s.amr, ["otp"]);
    // The refresh itself is stored: its rotated token and expiry.
    let stored = r
        .refresher
        .sealer
        .open(&key, s.refresh_token.as_ref().unwrap())
        .unwrap();
    assert_eq!(&stored[..], b"bob-2");
    assert!(s.provider_token_expires_at.unwrap() > now() + 200);
}
