//! The behaviour every [`SessionStore`] backend must share, as one async
//! function per behaviour. A backend's test file runs all of them with
//! [`suite_tests!`], one `#[tokio::test]` each, so a failure is named:
//!
//! ```ignore
//! mod suite;
//! async fn fixture() -> suite::Fixture { /* a fresh, empty store */ }
//! suite::suite_tests!(fixture);
//! // or, for a backend that needs a server which may be absent:
//! // suite::suite_tests!(optional: fixture_or_none);
//! ```
//!
//! Each fixture must be an isolated, empty store (a fresh file, a distinct
//! Redis key prefix or database): `list` with an empty filter sees all of
//! it. Times are relative to the real clock, so a backend that also
//! expires records by TTL (Redis `EXPIREAT`) keeps them during the test;
//! `collect_expired` is called with a `now` in the future and must remove
//! sessions by their `expires_at`, not only by TTL.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "shared test helpers outside #[test] functions; not every backend uses every helper"
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_session::{
    CasOutcome, SealedBlob, Sealer, Session, SessionFilter, SessionId, SessionKey, SessionStore,
};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What [`Fixture::dump`] returns: every byte the backend holds.
pub type DumpFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// A fresh, empty store plus a way to read everything it holds.
pub struct Fixture {
    pub store: Arc<dyn SessionStore>,
    /// The raw bytes the backend holds (the embedded file, a Redis dump of
    /// the fixture's keys), scanned for secrets.
    pub dump: Box<dyn Fn() -> DumpFuture + Send + Sync>,
    /// Kept alive for the test (a temp dir, a connection).
    pub guard: Box<dyn std::any::Any + Send>,
}

impl Fixture {
    /// A fixture whose dump is synchronous (reading a file).
    pub fn new(
        store: Arc<dyn SessionStore>,
        dump: impl Fn() -> Vec<u8> + Send + Sync + Clone + 'static,
        guard: impl std::any::Any + Send,
    ) -> Self {
        Self {
            store,
            dump: Box::new(move || {
                let dump = dump.clone();
                Box::pin(async move { dump() })
            }),
            guard: Box::new(guard),
        }
    }
}

/// One `#[tokio::test]` per suite function. The argument is an async fn
/// returning a [`Fixture`], or, after `optional:`, an `Option<Fixture>`
/// (`None`: the backend is not available here; the test says so and
/// passes).
macro_rules! suite_tests {
    (optional: $make:path) => {
        $crate::suite::suite_tests!(@tests async {
            match $make().await {
                Some(f) => f,
                None => {
                    eprintln!("skipped: session store backend not available");
                    return;
                }
            }
        });
    };
    ($make:path) => {
        $crate::suite::suite_tests!(@tests async { $make().await });
    };
    (@tests $fixture:expr) => {
        $crate::suite::suite_tests!(@one $fixture;
            create_then_get,
            create_twice_fails,
            create_with_version_not_one_is_refused,
            get_unknown_is_none,
            cas_updates_and_bumps,
            cas_conflict_returns_current,
            cas_with_bad_new_version_is_refused,
            cas_missing,
            revoke_one,
            revoke_unknown_is_false,
            revoke_by_subject,
            revoke_by_thumbprint,
            revoke_by_subject_and_thumbprint,
            revoke_with_empty_filter_is_refused,
            list_filters_and_orders,
            list_shows_no_secrets,
            collect_expired_removes_sessions_and_index_entries,
            due_for_refresh_is_earliest_first_whatever_the_age,
            due_for_refresh_skips_revoked_ended_and_unrefreshable_sessions,
            sealed_refresh_token_round_trips,
            health_ok,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_cas_loses_no_write() {
            let fixture = $fixture.await;
            $crate::suite::concurrent_cas_loses_no_write(fixture.store.clone()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn records_hold_no_session_id() {
            let fixture = $fixture.await;
            $crate::suite::records_hold_no_session_id(&*fixture.store, &*fixture.dump).await;
        }
    };
    (@one $fixture:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture.await;
                $crate::suite::$name(&*fixture.store).await;
            }
        )+
    };
}
pub(crate) use suite_tests;

// ---------------------------------------------------------------- helpers

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A fresh session (version 1) and the id its cookie holds.
pub fn session_with_id(
    subject: &str,
    thumbprint: Option<[u8; 32]>,
    now: i64,
) -> (SessionId, Session) {
    let id = SessionId::generate().unwrap();
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(subject.into()));
    claims.insert(
        "email".into(),
        Value::String(format!("{subject}@example.com")),
    );
    let session = Session {
        key: id.key(),
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        claims,
        amr: vec!["pwd".into()],
        acr: None,
        auth_time: now,
        mfa_time: None,
        bound_thumbprint: thumbprint,
        refresh_token: None,
        provider_token_expires_at: Some(now + 300),
        created_at: now,
        last_seen: now,
        expires_at: now + 8 * 3600,
        idle_secs: 1800,
        revoked: false,
        version: 1,
    };
    (id, session)
}

/// A fresh session (version 1) with a fresh id.
pub fn session(subject: &str, thumbprint: Option<[u8; 32]>, now: i64) -> Session {
    session_with_id(subject, thumbprint, now).1
}

/// A sealer with one fixed test key.
pub fn sealer() -> Sealer {
    Sealer::new(vec![("k1".into(), Zeroizing::new(vec![7u8; 32]))]).unwrap()
}

const TP_A: [u8; 32] = [0xA1; 32];
const TP_B: [u8; 32] = [0xB2; 32];

async fn must_get(store: &dyn SessionStore, key: &SessionKey) -> Session {
    store.get(key).await.unwrap().expect("session is stored")
}

/// The next version of `s` with `change` applied.
fn next(s: &Session, change: impl FnOnce(&mut Session)) -> Session {
    let mut n = s.clone();
    change(&mut n);
    n.version = s.version + 1;
    n
}

fn subjects(filter_subject: Option<&str>, thumbprint: Option<[u8; 32]>) -> SessionFilter {
    SessionFilter {
        subject: filter_subject.map(str::to_owned),
        thumbprint,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------------ create / get

pub async fn create_then_get(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", Some(TP_A), now);
    store.create(&s).await.unwrap();
    let got = must_get(store, &s.key).await;
    assert_eq!(got, s);
    assert!(got.is_live(now));
}

pub async fn create_twice_fails(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();
    // Same key, different content: must not overwrite.
    let mut other = s.clone();
    other.subject = "mallory".into();
    assert!(store.create(&other).await.is_err());
    assert_eq!(must_get(store, &s.key).await, s);
    // The index must not have learnt the second subject either.
    let n = store
        .revoke_matching(&subjects(Some("mallory"), None))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(!must_get(store, &s.key).await.revoked);
}

pub async fn create_with_version_not_one_is_refused(store: &dyn SessionStore) {
    let now = unix_now();
    let mut s = session("alice", None, now);
    s.version = 2;
    assert!(store.create(&s).await.is_err());
    assert!(store.get(&s.key).await.unwrap().is_none());
    s.version = 0;
    assert!(store.create(&s).await.is_err());
    assert!(store.get(&s.key).await.unwrap().is_none());
}

pub async fn get_unknown_is_none(store: &dyn SessionStore) {
    let now = unix_now();
    store.create(&session("alice", None, now)).await.unwrap();
    let unknown = SessionId::generate().unwrap().key();
    assert!(store.get(&unknown).await.unwrap().is_none());
}

// ------------------------------------------------------------------ compare-and-set

pub async fn cas_updates_and_bumps(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();

    let v2 = next(&s, |n| {
        n.mfa_time = Some(now + 5);
        n.amr = vec!["pwd".into(), "otp".into()];
    });
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    let got = must_get(store, &s.key).await;
    assert_eq!(got, v2);
    assert_eq!(got.version, 2);
    assert_eq!(got.mfa_time, Some(now + 5));

    let v3 = next(&got, |n| n.last_seen = now + 60);
    assert_eq!(
        store.compare_and_set(&v3, 2).await.unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(must_get(store, &s.key).await, v3);
}

pub async fn cas_conflict_returns_current(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();

    // Two writers read version 1; the first one wins.
    let first = next(&s, |n| n.mfa_time = Some(now + 1));
    let second = next(&s, |n| n.last_seen = now + 2);
    assert_eq!(
        store.compare_and_set(&first, 1).await.unwrap(),
        CasOutcome::Updated
    );
    match store.compare_and_set(&second, 1).await.unwrap() {
        CasOutcome::Conflict(current) => assert_eq!(*current, first),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The loser wrote nothing.
    assert_eq!(must_get(store, &s.key).await, first);

    // A stale expectation far behind also conflicts.
    let stale = next(&s, |n| n.revoked = false);
    assert!(matches!(
        store.compare_and_set(&stale, 1).await.unwrap(),
        CasOutcome::Conflict(_)
    ));
}

pub async fn cas_with_bad_new_version_is_refused(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();

    // Not expected + 1: refused as an error, nothing written.
    for bad in [1u64, 3, 0, u64::MAX] {
        let mut n = s.clone();
        n.mfa_time = Some(now + 9);
        n.version = bad;
        assert!(
            store.compare_and_set(&n, 1).await.is_err(),
            "version {bad} with expected 1 must be refused"
        );
    }
    // expected = u64::MAX cannot be followed.
    let mut n = s.clone();
    n.version = 0;
    assert!(store.compare_and_set(&n, u64::MAX).await.is_err());

    assert_eq!(must_get(store, &s.key).await, s);
}

pub async fn cas_missing(store: &dyn SessionStore) {
    let now = unix_now();
    let s = session("alice", None, now);
    let v2 = next(&s, |n| n.mfa_time = Some(now));
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Missing
    );
    // And it did not create it.
    assert!(store.get(&s.key).await.unwrap().is_none());
}

/// Tasks that each add one to a counter claim, retrying on conflict.
pub const CONCURRENT_WRITERS: u64 = 50;

pub async fn concurrent_cas_loses_no_write(store: Arc<dyn SessionStore>) {
    let now = unix_now();
    let mut s = session("alice", None, now);
    s.claims.insert("counter".into(), Value::from(0u64));
    store.create(&s).await.unwrap();
    let key = s.key;

    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT_WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut current = store.get(&key).await.unwrap().unwrap();
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                assert!(attempts < 10_000, "no progress");
                let counter = current.claims["counter"].as_u64().unwrap();
                let n = next(&current, |n| {
                    n.claims.insert("counter".into(), Value::from(counter + 1));
                });
                match store.compare_and_set(&n, current.version).await.unwrap() {
                    CasOutcome::Updated => return n.version,
                    CasOutcome::Conflict(now_stored) => current = *now_stored,
                    CasOutcome::Missing => panic!("session vanished"),
                }
            }
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        won.push(t.await.unwrap());
    }
    // Exactly one winner per version.
    won.sort_unstable();
    let expected: Vec<u64> = (2..=CONCURRENT_WRITERS + 1).collect();
    assert_eq!(won, expected);

    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(got.claims["counter"].as_u64(), Some(CONCURRENT_WRITERS));
    assert_eq!(got.version, CONCURRENT_WRITERS + 1);
}

// ------------------------------------------------------------------ revocation

pub async fn revoke_one(store: &dyn SessionStore) {
    let now = unix_now();
    let a = session("alice", None, now);
    let b = session("alice", None, now);
    store.create(&a).await.unwrap();
    store.create(&b).await.unwrap();

    assert!(store.revoke(&a.key).await.unwrap());
    let got = must_get(store, &a.key).await;
    assert!(got.revoked);
    assert!(!got.is_live(now));
    assert_eq!(got.version, 2);
    // Only the revoked field and version changed.
    assert_eq!(next(&a, |n| n.revoked = true), got);
    // The other session is untouched.
    assert_eq!(must_get(store, &b.key).await, b);

    // Revoking again: nothing newly revoked, nothing written.
    assert!(!store.revoke(&a.key).await.unwrap());
    assert_eq!(must_get(store, &a.key).await.version, 2);

    // A writer holding the pre-revocation version cannot undo it.
    let undo = next(&a, |n| n.revoked = false);
    assert!(matches!(
        store.compare_and_set(&undo, 1).await.unwrap(),
        CasOutcome::Conflict(_)
    ));
    assert!(must_get(store, &a.key).await.revoked);
}

pub async fn revoke_unknown_is_false(store: &dyn SessionStore) {
    let unknown = SessionId::generate().unwrap().key();
    assert!(!store.revoke(&unknown).await.unwrap());
    assert!(store.get(&unknown).await.unwrap().is_none());
}

pub async fn revoke_by_subject(store: &dyn SessionStore) {
    let now = unix_now();
    let a1 = session("alice", Some(TP_A), now);
    let a2 = session("alice", None, now);
    let a3 = session("alice", None, now);
    let b = session("bob", Some(TP_A), now);
    // A subject that is a prefix of another must not match it.
    let al = session("alic", None, now);
    for s in [&a1, &a2, &a3, &b, &al] {
        store.create(s).await.unwrap();
    }
    assert!(store.revoke(&a3.key).await.unwrap());

    let n = store
        .revoke_matching(&subjects(Some("alice"), None))
        .await
        .unwrap();
    assert_eq!(n, 2, "a3 was already revoked");
    for s in [&a1, &a2, &a3] {
        let got = must_get(store, &s.key).await;
        assert!(got.revoked);
        assert_eq!(got.version, 2);
    }
    assert_eq!(must_get(store, &b.key).await, b);
    assert_eq!(must_get(store, &al.key).await, al);

    // Again: nothing new.
    let n = store
        .revoke_matching(&subjects(Some("alice"), None))
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Unknown subject.
    let n = store
        .revoke_matching(&subjects(Some("nobody"), None))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(!must_get(store, &b.key).await.revoked);
}

pub async fn revoke_by_thumbprint(store: &dyn SessionStore) {
    let now = unix_now();
    let a_a = session("alice", Some(TP_A), now);
    let b_a = session("bob", Some(TP_A), now);
    let a_b = session("alice", Some(TP_B), now);
    let c = session("carol", None, now);
    for s in [&a_a, &b_a, &a_b, &c] {
        store.create(s).await.unwrap();
    }
    let n = store
        .revoke_matching(&subjects(None, Some(TP_A)))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(must_get(store, &a_a.key).await.revoked);
    assert!(must_get(store, &b_a.key).await.revoked);
    assert_eq!(must_get(store, &a_b.key).await, a_b);
    assert_eq!(must_get(store, &c.key).await, c);

    let n = store
        .revoke_matching(&subjects(None, Some([0x33; 32])))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

pub async fn revoke_by_subject_and_thumbprint(store: &dyn SessionStore) {
    let now = unix_now();
    let a_a = session("alice", Some(TP_A), now);
    let a_b = session("alice", Some(TP_B), now);
    let b_b = session("bob", Some(TP_B), now);
    let a_none = session("alice", None, now);
    for s in [&a_a, &a_b, &b_b, &a_none] {
        store.create(s).await.unwrap();
    }
    // Both given: both must match.
    let n = store
        .revoke_matching(&subjects(Some("alice"), Some(TP_B)))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(must_get(store, &a_b.key).await.revoked);
    assert_eq!(must_get(store, &a_a.key).await, a_a);
    assert_eq!(must_get(store, &b_b.key).await, b_b);
    assert_eq!(must_get(store, &a_none.key).await, a_none);

    let n = store
        .revoke_matching(&subjects(Some("carol"), Some(TP_A)))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

pub async fn revoke_with_empty_filter_is_refused(store: &dyn SessionStore) {
    let now = unix_now();
    let a = session("alice", Some(TP_A), now);
    let b = session("bob", None, now);
    store.create(&a).await.unwrap();
    store.create(&b).await.unwrap();

    assert!(store
        .revoke_matching(&SessionFilter::default())
        .await
        .is_err());
    // An empty subject is no filter either.
    assert!(store
        .revoke_matching(&subjects(Some(""), None))
        .await
        .is_err());
    assert_eq!(must_get(store, &a.key).await, a);
    assert_eq!(must_get(store, &b.key).await, b);
}

// ------------------------------------------------------------------ listing

pub async fn list_filters_and_orders(store: &dyn SessionStore) {
    let now = unix_now();
    let mut made = Vec::new();
    for (i, (sub, tp)) in [
        ("alice", Some(TP_A)),
        ("bob", Some(TP_A)),
        ("alice", None),
        ("carol", Some(TP_B)),
        ("alice", Some(TP_B)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = session(sub, tp, now);
        s.created_at = now + i64::try_from(i).unwrap();
        store.create(&s).await.unwrap();
        made.push(s);
    }
    // A revoked session is still listed (marked revoked).
    assert!(store.revoke(&made[1].key).await.unwrap());

    let hex = |idx: &[usize]| {
        idx.iter()
            .map(|&i| made[i].key.to_hex())
            .collect::<Vec<_>>()
    };
    let keys = |list: Vec<portcullis_session::SessionSummary>| {
        list.into_iter().map(|s| s.key).collect::<Vec<_>>()
    };

    let all = store.list(&SessionFilter::default(), 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], made[4].summary());
    assert!(all[3].revoked);
    assert_eq!(keys(all), hex(&[4, 3, 2, 1, 0]));

    let two = store.list(&SessionFilter::default(), 2).await.unwrap();
    assert_eq!(keys(two), hex(&[4, 3]));

    let none = store.list(&SessionFilter::default(), 0).await.unwrap();
    assert!(none.is_empty());

    let alice = store
        .list(&subjects(Some("alice"), None), 100)
        .await
        .unwrap();
    assert_eq!(keys(alice), hex(&[4, 2, 0]));

    let alice1 = store.list(&subjects(Some("alice"), None), 1).await.unwrap();
    assert_eq!(keys(alice1), hex(&[4]));

    let tp_a = store.list(&subjects(None, Some(TP_A)), 100).await.unwrap();
    assert_eq!(keys(tp_a), hex(&[1, 0]));

    let both = store
        .list(&subjects(Some("alice"), Some(TP_B)), 100)
        .await
        .unwrap();
    assert_eq!(keys(both), hex(&[4]));

    let nobody = store
        .list(&subjects(Some("nobody"), None), 100)
        .await
        .unwrap();
    assert!(nobody.is_empty());
}

pub async fn list_shows_no_secrets(store: &dyn SessionStore) {
    let now = unix_now();
    let mut s = session("alice", Some(TP_A), now);
    s.claims
        .insert("secret_claim".into(), Value::String("do-not-list".into()));
    s.refresh_token = Some(sealer().seal(&s.key, b"refresh-token-plaintext").unwrap());
    store.create(&s).await.unwrap();
    let list = store.list(&SessionFilter::default(), 10).await.unwrap();
    assert_eq!(list, vec![s.summary()]);
    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains("do-not-list"));
    assert!(!text.contains("ciphertext"));
}

// ------------------------------------------------------------------ refresh schedule

/// A session with a refresh token whose provider tokens expire at `due`.
fn refreshable(subject: &str, created_at: i64, due: i64) -> Session {
    let mut s = session(subject, None, created_at);
    s.refresh_token = Some(sealer().seal(&s.key, b"refresh-token").unwrap());
    s.provider_token_expires_at = Some(due);
    s
}

pub async fn due_for_refresh_is_earliest_first_whatever_the_age(store: &dyn SessionStore) {
    let now = unix_now();
    // The oldest session is due first; many newer ones are due later.
    let old = refreshable("old", now - 3600, now - 50);
    store.create(&old).await.unwrap();
    let mut newer = Vec::new();
    for i in 0..5 {
        let s = refreshable(&format!("new{i}"), now - 10 + i, now - 40 + i);
        store.create(&s).await.unwrap();
        newer.push(s.key);
    }
    let later = refreshable("later", now, now + 100);
    store.create(&later).await.unwrap();

    // A budget smaller than the number of sessions still reaches the
    // oldest one: the schedule is by due time, not by creation.
    assert_eq!(store.due_for_refresh(now, 1).await.unwrap(), vec![old.key]);
    let mut all = vec![old.key];
    all.extend(newer.iter().copied());
    assert_eq!(store.due_for_refresh(now, 100).await.unwrap(), all);
    assert_eq!(store.due_for_refresh(now, 3).await.unwrap(), all[..3]);

    // A refreshed session moves back in the schedule: the next due comes
    // first, and the refreshed one only when it is due again.
    let refreshed = next(&old, |n| n.provider_token_expires_at = Some(now + 200));
    assert_eq!(
        store.compare_and_set(&refreshed, 1).await.unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(store.due_for_refresh(now, 1).await.unwrap(), vec![newer[0]]);
    let due_later = store.due_for_refresh(now + 150, 100).await.unwrap();
    assert!(due_later.contains(&later.key));
    assert!(!due_later.contains(&old.key));
    assert_eq!(
        store.due_for_refresh(now + 200, 100).await.unwrap().last(),
        Some(&old.key)
    );
    assert!(store.due_for_refresh(now, 0).await.unwrap().is_empty());
}

pub async fn due_for_refresh_skips_revoked_ended_and_unrefreshable_sessions(
    store: &dyn SessionStore,
) {
    let now = unix_now();
    let keep = refreshable("keep", now, now - 10);
    let revoked = refreshable("revoked", now, now - 20);
    let by_user = refreshable("eve", now, now - 30);
    let by_cas = refreshable("cas", now, now - 40);
    let dropped = refreshable("dropped", now, now - 50);
    let mut no_token = session("no-token", None, now);
    no_token.provider_token_expires_at = Some(now - 60);
    let mut ends = refreshable("ends", now, now - 70);
    ends.expires_at = now + 100;
    for s in [
        &keep, &revoked, &by_user, &by_cas, &dropped, &no_token, &ends,
    ] {
        store.create(s).await.unwrap();
    }
    assert_eq!(store.due_for_refresh(now, 100).await.unwrap().len(), 6);

    assert!(store.revoke(&revoked.key).await.unwrap());
    assert_eq!(
        store
            .revoke_matching(&subjects(Some("eve"), None))
            .await
            .unwrap(),
        1
    );
    let v2 = next(&by_cas, |n| n.revoked = true);
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    // The refresh token of a session that cannot be refreshed any more is
    // dropped: off the schedule.
    let v2 = next(&dropped, |n| {
        n.refresh_token = None;
        n.provider_token_expires_at = None;
    });
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(
        store.due_for_refresh(now, 100).await.unwrap(),
        vec![ends.key, keep.key]
    );
    // Collected sessions leave the schedule with their record.
    assert_eq!(store.collect_expired(now + 100).await.unwrap(), 1);
    assert_eq!(
        store.due_for_refresh(now, 100).await.unwrap(),
        vec![keep.key]
    );
    // A revoked session stays off even when written again.
    let current = must_get(store, &revoked.key).await;
    let again = next(&current, |n| n.provider_token_expires_at = Some(now - 5));
    assert_eq!(
        store
            .compare_and_set(&again, current.version)
            .await
            .unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(
        store.due_for_refresh(now, 100).await.unwrap(),
        vec![keep.key]
    );
}

// ------------------------------------------------------------------ expiry

pub async fn collect_expired_removes_sessions_and_index_entries(store: &dyn SessionStore) {
    let now = unix_now();
    let mut early = session("alice", Some(TP_A), now);
    early.expires_at = now + 100;
    let mut boundary = session("alice", Some(TP_A), now);
    boundary.expires_at = now + 200;
    let mut live = session("alice", Some(TP_A), now);
    live.expires_at = now + 100_000;
    let mut other = session("bob", None, now);
    other.expires_at = now + 150;
    for s in [&early, &boundary, &live, &other] {
        store.create(s).await.unwrap();
    }

    // Nothing is due yet.
    assert_eq!(store.collect_expired(now).await.unwrap(), 0);
    assert_eq!(
        store
            .list(&SessionFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        4
    );

    // expires_at <= now is collected.
    let at = now + 200;
    assert_eq!(store.collect_expired(at).await.unwrap(), 3);
    assert!(store.get(&early.key).await.unwrap().is_none());
    assert!(store.get(&boundary.key).await.unwrap().is_none());
    assert!(store.get(&other.key).await.unwrap().is_none());
    assert_eq!(must_get(store, &live.key).await, live);
    assert_eq!(store.collect_expired(at).await.unwrap(), 0);

    // The indexes only know the live session.
    let by_sub = store
        .list(&subjects(Some("alice"), None), 10)
        .await
        .unwrap();
    assert_eq!(by_sub, vec![live.summary()]);
    let by_tp = store.list(&subjects(None, Some(TP_A)), 10).await.unwrap();
    assert_eq!(by_tp, vec![live.summary()]);
    assert!(store
        .list(&subjects(Some("bob"), None), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .revoke_matching(&subjects(Some("alice"), None))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .revoke_matching(&subjects(Some("bob"), None))
            .await
            .unwrap(),
        0
    );

    // A collected session's CAS finds it missing.
    let v2 = next(&early, |n| n.mfa_time = Some(now));
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Missing
    );
    assert!(store.get(&early.key).await.unwrap().is_none());
}

// ------------------------------------------------------------------ secrets at rest

/// The store holds the SHA-256 of the id, never the id; and sealed
/// refresh tokens, never the plaintext. `dump` returns every byte the
/// backend holds.
pub async fn records_hold_no_session_id(
    store: &dyn SessionStore,
    dump: &(dyn Fn() -> DumpFuture + Send + Sync),
) {
    let now = unix_now();
    let plaintext = b"refresh-token-plaintext-7f3a9c";
    let mut ids = Vec::new();
    for sub in ["alice", "bob", "carol"] {
        let (id, mut s) = session_with_id(sub, Some(TP_A), now);
        s.refresh_token = Some(sealer().seal(&s.key, plaintext).unwrap());
        store.create(&s).await.unwrap();
        let v2 = next(&s, |n| n.mfa_time = Some(now + 1));
        assert_eq!(
            store.compare_and_set(&v2, 1).await.unwrap(),
            CasOutcome::Updated
        );
        ids.push((id, s.key));
    }
    let (_, first_key) = &ids[0];
    assert!(store.revoke(first_key).await.unwrap());

    let bytes = dump().await;
    // The dump really holds the records (so the checks below can fail).
    for (_, key) in &ids {
        assert!(
            contains(&bytes, key.to_hex().as_bytes()),
            "dump does not hold the record of {key:?}"
        );
    }
    for (id, _) in &ids {
        let cookie = id.to_cookie();
        assert!(!contains(&bytes, cookie.as_bytes()), "cookie value stored");
        let raw = portcullis_session_raw(id);
        assert!(!contains(&bytes, &raw), "raw session id stored");
        let hex_id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !contains(&bytes, hex_id.as_bytes()),
            "hex session id stored"
        );
    }
    assert!(
        !contains(&bytes, plaintext),
        "refresh token stored in clear"
    );
}

/// The raw id bytes, recovered from the cookie value (base64url).
fn portcullis_session_raw(id: &SessionId) -> Vec<u8> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.decode(id.to_cookie().as_bytes()).unwrap()
}

pub async fn sealed_refresh_token_round_trips(store: &dyn SessionStore) {
    let now = unix_now();
    let sealer = sealer();
    let mut s = session("alice", None, now);
    let blob: SealedBlob = sealer.seal(&s.key, b"provider-refresh-token").unwrap();
    s.refresh_token = Some(blob.clone());
    store.create(&s).await.unwrap();

    let got = must_get(store, &s.key).await;
    assert_eq!(got.refresh_token.as_ref(), Some(&blob));
    let opened = sealer
        .open(&got.key, got.refresh_token.as_ref().unwrap())
        .unwrap();
    assert_eq!(opened.as_slice(), b"provider-refresh-token");

    // Moved to another session, it does not open.
    let other = session("alice", None, now);
    assert!(sealer.open(&other.key, &blob).is_err());

    // A rotated refresh token replaces the old one through CAS.
    let blob2 = sealer.seal(&s.key, b"rotated-refresh-token").unwrap();
    let v2 = next(&got, |n| n.refresh_token = Some(blob2.clone()));
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    let got = must_get(store, &s.key).await;
    let opened = sealer
        .open(&got.key, got.refresh_token.as_ref().unwrap())
        .unwrap();
    assert_eq!(opened.as_slice(), b"rotated-refresh-token");
}

// ------------------------------------------------------------------ health

pub async fn health_ok(store: &dyn SessionStore) {
    store.health().await.unwrap();
    assert!(matches!(store.kind(), "embedded" | "redis"));
    // Health does not disturb the data.
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();
    store.health().await.unwrap();
    assert_eq!(must_get(store, &s.key).await, s);
    assert_eq!(
        store
            .list(&SessionFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
