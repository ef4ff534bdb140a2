//! The Redis store against a real `redis-server`: the shared suite, then
//! what only Redis has (TTL, ACL users, several gateway instances on one
//! server, records damaged in the store).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions (clippy.toml allows these in tests)"
)]

#[path = "common/redis_server.rs"]
mod redis_server;

mod suite;

use std::sync::Arc;

use portcullis_session::{
    CasOutcome, RedisOptions, RedisStore, SessionFilter, SessionStore, StoreError,
    REDIS_ACL_COMMANDS,
};
use redis_server::{RedisServer, GATEWAY_PASSWORD, GATEWAY_USER};
use suite::{session, unix_now, Fixture};
use zeroize::Zeroizing;

const PREFIX: &str = "portcullis:";

fn options(server: &RedisServer) -> RedisOptions {
    let mut o = RedisOptions::new(server.url());
    o.username = Some(GATEWAY_USER.into());
    o.password = Some(Zeroizing::new(GATEWAY_PASSWORD.into()));
    o
}

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(options(server)).await.unwrap()
}

/// A fresh server whose gateway user has exactly the documented commands.
fn narrow_server() -> RedisServer {
    RedisServer::start_with_acl(REDIS_ACL_COMMANDS)
}

async fn fixture() -> Fixture {
    let server = Arc::new(narrow_server());
    let store: Arc<dyn SessionStore> = Arc::new(store(&server).await);
    let dump_server = server.clone();
    Fixture::new(store, move || dump_server.dump_prefix(PREFIX), server)
}

suite::suite_tests!(fixture);

fn record_key(key: &portcullis_session::SessionKey) -> String {
    format!("{PREFIX}s:{}", key.to_hex())
}

// ------------------------------------------------------------------ TTL

#[tokio::test]
async fn key_ttl_is_expires_at() {
    let server = narrow_server();
    let store = store(&server).await;
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();
    let at: i64 = server.admin_cmd(&["EXPIRETIME", &record_key(&s.key)]);
    assert_eq!(at, s.expires_at);

    // A compare-and-set that moves the absolute end moves the TTL.
    let mut v2 = s.clone();
    v2.expires_at = now + 60;
    v2.version = 2;
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    let at: i64 = server.admin_cmd(&["EXPIRETIME", &record_key(&s.key)]);
    assert_eq!(at, now + 60);

    // A revocation keeps it.
    assert!(store.revoke(&s.key).await.unwrap());
    let at: i64 = server.admin_cmd(&["EXPIRETIME", &record_key(&s.key)]);
    assert_eq!(at, now + 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_gone_by_ttl_leaves_no_index_entry_after_collection() {
    let server = narrow_server();
    let store = store(&server).await;
    let now = unix_now();
    let mut gone = session("alice", Some([7; 32]), now);
    gone.expires_at = now + 30;
    let live = session("alice", Some([7; 32]), now);
    store.create(&gone).await.unwrap();
    store.create(&live).await.unwrap();

    // What the server does when the TTL fires.
    let _: i64 = server.admin_cmd(&["DEL", &record_key(&gone.key)]);

    assert!(store.get(&gone.key).await.unwrap().is_none());
    assert!(!store.revoke(&gone.key).await.unwrap());
    let all = store.list(&SessionFilter::default(), 10).await.unwrap();
    assert_eq!(all, vec![live.summary()]);

    assert_eq!(store.collect_expired(now + 30).await.unwrap(), 1);
    let dump = String::from_utf8_lossy(&server.dump_prefix(PREFIX)).into_owned();
    assert!(
        !dump.contains(&gone.key.to_hex()),
        "index entries left:\n{dump}"
    );
    assert!(dump.contains(&live.key.to_hex()));

    // Only the live session is revoked by subject.
    let by_sub = SessionFilter {
        subject: Some("alice".into()),
        thumbprint: None,
    };
    assert_eq!(store.revoke_matching(&by_sub).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_expired_runs_in_batches() {
    let server = narrow_server();
    let store = store(&server).await;
    let now = unix_now();
    let n = portcullis_session::REDIS_COLLECT_BATCH + 7;
    for _ in 0..n {
        let mut s = session("bulk", None, now);
        s.expires_at = now + 100;
        store.create(&s).await.unwrap();
    }
    assert_eq!(store.collect_expired(now + 100).await.unwrap(), n);
    assert!(store
        .list(&SessionFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());
    let keys: Vec<String> = server.admin_cmd(&["KEYS", "portcullis:*"]);
    assert!(
        keys.iter().all(|k| k == "portcullis:health"),
        "left after collection: {keys:?}"
    );
}

// ------------------------------------------------------------------ credentials

#[tokio::test]
async fn password_from_options_authenticates() {
    let server = narrow_server();
    let store = store(&server).await;
    store.health().await.unwrap();
    let clients: String = server.admin_cmd(&["CLIENT", "LIST"]);
    assert!(
        clients
            .lines()
            .any(|l| l.contains(&format!("user={GATEWAY_USER} "))),
        "no client logged in as the gateway user:\n{clients}"
    );
}

#[tokio::test]
async fn wrong_password_is_permission_denied() {
    let server = narrow_server();
    let mut o = options(&server);
    o.password = Some(Zeroizing::new("not-the-password".into()));
    let err = RedisStore::connect(o).await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-password"));

    let mut o = options(&server);
    o.username = Some("nobody".into());
    let err = RedisStore::connect(o).await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
    assert!(!err.to_string().contains(GATEWAY_PASSWORD));
}

#[tokio::test]
async fn keys_outside_the_acl_pattern_are_permission_denied() {
    let server = narrow_server();
    let mut o = options(&server);
    o.key_prefix = "other:".into();
    // The connection is allowed; every key it touches is not.
    let store = RedisStore::connect(o).await.unwrap();
    let s = session("alice", None, unix_now());
    let err = store.create(&s).await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
    let err = store.get(&s.key).await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
}

#[tokio::test]
async fn nothing_listens_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisStore::connect(RedisOptions::new(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// ------------------------------------------------------------------ several instances

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_sees_mfa_and_revocation_on_next_read() {
    let server = narrow_server();
    let a = store(&server).await;
    let b = store(&server).await;
    let now = unix_now();
    let s = session("alice", None, now);
    a.create(&s).await.unwrap();
    assert_eq!(b.get(&s.key).await.unwrap().unwrap(), s);

    // A second factor completed on instance A ...
    let mut v2 = s.clone();
    v2.mfa_time = Some(now + 1);
    v2.version = 2;
    assert_eq!(
        a.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    // ... is seen by B on its very next read.
    assert_eq!(
        b.get(&s.key).await.unwrap().unwrap().mfa_time,
        Some(now + 1)
    );

    // Revoked on B, refused on A at once.
    assert!(b.revoke(&s.key).await.unwrap());
    let seen = a.get(&s.key).await.unwrap().unwrap();
    assert!(seen.revoked && !seen.is_live(now));

    // A writer on A still holding version 2 cannot undo it.
    let mut undo = v2.clone();
    undo.version = 3;
    undo.revoked = false;
    assert!(matches!(
        a.compare_and_set(&undo, 2).await.unwrap(),
        CasOutcome::Conflict(_)
    ));
    // Even with the right version, a revoked session stays revoked.
    let mut undo = seen.clone();
    undo.version = seen.version + 1;
    undo.revoked = false;
    assert_eq!(
        a.compare_and_set(&undo, seen.version).await.unwrap(),
        CasOutcome::Updated
    );
    assert!(b.get(&s.key).await.unwrap().unwrap().revoked);
}

// ------------------------------------------------------------------ round trips

/// Commands the server processed since the last `CONFIG RESETSTAT`, by
/// name, leaving out the admin's own `CONFIG` and `INFO`.
fn commands_since_reset(server: &RedisServer) -> Vec<(String, u64)> {
    let stats: String = server.admin_cmd(&["INFO", "commandstats"]);
    let mut out = Vec::new();
    for line in stats.lines() {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        let Some(name) = name.strip_prefix("cmdstat_") else {
            continue;
        };
        if name.starts_with("config") || name == "info" {
            continue;
        }
        let calls: u64 = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .unwrap()
            .parse()
            .unwrap();
        out.push((name.to_owned(), calls));
    }
    out
}

fn reset_stats(server: &RedisServer) {
    let _: () = server.admin_cmd(&["CONFIG", "RESETSTAT"]);
}

#[tokio::test]
async fn get_is_one_command() {
    let server = narrow_server();
    let store = store(&server).await;
    let s = session("alice", None, unix_now());
    store.create(&s).await.unwrap();
    reset_stats(&server);
    const N: u64 = 25;
    for _ in 0..N {
        assert!(store.get(&s.key).await.unwrap().is_some());
    }
    assert_eq!(commands_since_reset(&server), vec![("hmget".to_owned(), N)]);
}

/// Watches the commands clients send (`MONITOR`), telling the ones sent
/// over the network from the ones scripts run.
struct Monitor {
    con: redis::Connection,
    marks: u32,
}

impl Monitor {
    fn start(server: &RedisServer) -> Self {
        let mut con = server.admin();
        let ok: String = redis::cmd("MONITOR").query(&mut con).unwrap();
        assert_eq!(ok, "OK");
        Self { con, marks: 0 }
    }

    /// The names of the commands clients sent since the last call (not
    /// those run inside scripts).
    fn sent(&mut self, server: &RedisServer) -> Vec<String> {
        self.marks += 1;
        let marker = format!("monitor-mark-{}", self.marks);
        let _: String = server.admin_cmd(&["ECHO", &marker]);
        let mut sent = Vec::new();
        loop {
            let line = match self.con.recv_response().unwrap() {
                redis::Value::SimpleString(line) => line,
                other => panic!("unexpected MONITOR output {other:?}"),
            };
            if line.contains(&marker) {
                return sent;
            }
            if line.contains(" lua] ") {
                continue;
            }
            let name = line.split('"').nth(1).unwrap().to_ascii_lowercase();
            sent.push(name);
        }
    }
}

#[tokio::test]
async fn each_write_is_one_round_trip() {
    let server = narrow_server();
    let store = store(&server).await;
    let now = unix_now();
    let by_sub = SessionFilter {
        subject: Some("alice".into()),
        thumbprint: None,
    };
    // Load every script once (the first call after a start loads it).
    let warm = session("warm", None, now);
    store.create(&warm).await.unwrap();
    let mut w2 = warm.clone();
    w2.version = 2;
    store.compare_and_set(&w2, 1).await.unwrap();
    store.revoke(&warm.key).await.unwrap();
    store.revoke_matching(&by_sub).await.unwrap();
    store.list(&by_sub, 10).await.unwrap();
    store.collect_expired(now).await.unwrap();
    store.due_for_refresh(now, 10).await.unwrap();

    let mut monitor = Monitor::start(&server);
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();
    assert_eq!(monitor.sent(&server), ["evalsha"], "create");
    let mut v2 = s.clone();
    v2.version = 2;
    assert_eq!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Updated
    );
    assert_eq!(monitor.sent(&server), ["evalsha"], "compare_and_set");
    assert!(matches!(
        store.compare_and_set(&v2, 1).await.unwrap(),
        CasOutcome::Conflict(_)
    ));
    assert_eq!(
        monitor.sent(&server),
        ["evalsha"],
        "compare_and_set conflict"
    );
    assert!(store.revoke(&s.key).await.unwrap());
    assert_eq!(monitor.sent(&server), ["evalsha"], "revoke");
    assert_eq!(store.revoke_matching(&by_sub).await.unwrap(), 0);
    assert_eq!(monitor.sent(&server), ["evalsha"], "revoke_matching");
    assert_eq!(
        store
            .list(&SessionFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(monitor.sent(&server), ["evalsha"], "list");
    assert_eq!(store.collect_expired(now).await.unwrap(), 0);
    assert_eq!(monitor.sent(&server), ["evalsha"], "collect_expired");
    assert!(store.due_for_refresh(now, 10).await.unwrap().is_empty());
    assert_eq!(monitor.sent(&server), ["evalsha"], "due_for_refresh");
    assert!(store.get(&s.key).await.unwrap().unwrap().revoked);
    assert_eq!(monitor.sent(&server), ["hmget"], "get");
    store.health().await.unwrap();
    assert_eq!(monitor.sent(&server), ["ping", "set"], "health");
}

// ------------------------------------------------------------------ damaged records

#[tokio::test]
async fn damaged_records_are_corrupt() {
    let server = narrow_server();
    let store = store(&server).await;
    let now = unix_now();
    let s = session("alice", None, now);
    store.create(&s).await.unwrap();
    let key = record_key(&s.key);

    let _: i64 = server.admin_cmd(&["HSET", &key, "json", "{not json"]);
    let err = store.get(&s.key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    // Another session's record under this key.
    let other = session("mallory", None, now);
    let other_json = serde_json::to_string(&other).unwrap();
    let _: i64 = server.admin_cmd(&["HSET", &key, "json", &other_json]);
    let err = store.get(&s.key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    // A version that is not a number, a revocation flag that is neither.
    let good = serde_json::to_string(&s).unwrap();
    let _: i64 = server.admin_cmd(&["HSET", &key, "json", &good, "v", "x"]);
    assert!(matches!(
        store.get(&s.key).await,
        Err(StoreError::Corrupt(_))
    ));
    let _: i64 = server.admin_cmd(&["HSET", &key, "v", "1", "r", "yes"]);
    assert!(matches!(
        store.get(&s.key).await,
        Err(StoreError::Corrupt(_))
    ));
    let _: i64 = server.admin_cmd(&["HSET", &key, "r", "0"]);
    assert_eq!(store.get(&s.key).await.unwrap().unwrap(), s);

    // A record missing its version.
    let _: i64 = server.admin_cmd(&["HDEL", &key, "v"]);
    assert!(matches!(
        store.get(&s.key).await,
        Err(StoreError::Corrupt(_))
    ));

    // A key of the wrong type.
    let _: i64 = server.admin_cmd(&["DEL", &key]);
    let _: () = server.admin_cmd(&["SET", &key, "x"]);
    let err = store.get(&s.key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    // Oversized.
    let _: i64 = server.admin_cmd(&["DEL", &key]);
    let big = "x".repeat(portcullis_session::MAX_REDIS_RECORD_BYTES + 1);
    let _: i64 = server.admin_cmd(&["HSET", &key, "json", &big, "v", "1", "r", "0"]);
    let err = store.get(&s.key).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn errors_hold_no_secret() {
    let server = narrow_server();
    let store = store(&server).await;
    let (id, s) = suite::session_with_id("alice", None, unix_now());
    store.create(&s).await.unwrap();
    let _: i64 = server.admin_cmd(&["HSET", &record_key(&s.key), "json", "{\"key\":\"oops"]);
    let err = store.get(&s.key).await.unwrap_err();
    let text = format!("{err} {err:?} {store:?}");
    assert!(!text.contains(id.to_cookie().as_str()));
    assert!(!text.contains(GATEWAY_PASSWORD));
    assert!(
        !text.contains("oops"),
        "record content in the error: {text}"
    );
}

// ------------------------------------------------------------------ TLS

fn tls_server(host: &str) -> (RedisServer, portcullis_pki::Ca) {
    let ca = portcullis_pki::Ca::new_root("Portcullis Test Redis CA").unwrap();
    let leaf = ca
        .issue(&portcullis_pki::IssueRequest::server(host))
        .unwrap();
    let server = RedisServer::start_tls(redis_server::TlsFiles {
        cert_pem: leaf.cert_pem.clone(),
        key_pem: leaf.key_pem.to_string(),
        ca_pem: ca.cert_pem().to_owned(),
    });
    (server, ca)
}

fn tls_options(server: &RedisServer, host: &str, ca: &portcullis_pki::Ca) -> RedisOptions {
    let mut o = RedisOptions::new(format!("rediss://{host}:{}", server.tls_port()));
    o.username = Some(GATEWAY_USER.into());
    o.password = Some(Zeroizing::new(GATEWAY_PASSWORD.into()));
    o.tls_roots = Some(vec![ca.cert_der()]);
    o
}

#[tokio::test]
async fn rediss_with_configured_roots() {
    let (server, ca) = tls_server("127.0.0.1");
    let store = RedisStore::connect(tls_options(&server, "127.0.0.1", &ca))
        .await
        .unwrap();
    store.health().await.unwrap();
    let s = session("alice", None, unix_now());
    store.create(&s).await.unwrap();
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s));
    // The gateway's connection really is the TLS one.
    let clients: String = server.admin_cmd(&["CLIENT", "LIST"]);
    let gw: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(&format!("user={GATEWAY_USER} ")))
        .collect();
    assert!(!gw.is_empty());
    assert!(
        gw.iter()
            .all(|l| l.contains(&format!("laddr=127.0.0.1:{} ", server.tls_port()))),
        "{gw:?}"
    );
}

#[tokio::test]
async fn rediss_refuses_an_untrusted_server() {
    let (server, _) = tls_server("127.0.0.1");
    let other = portcullis_pki::Ca::new_root("Someone Else").unwrap();
    let err = RedisStore::connect(tls_options(&server, "127.0.0.1", &other))
        .await
        .unwrap_err();
    let StoreError::Unavailable(why) = &err else {
        panic!("expected unavailable, got {err:?}");
    };
    assert!(
        why.contains("tls") && why.contains("UnknownIssuer"),
        "{why}"
    );
}

#[tokio::test]
async fn rediss_refuses_a_certificate_for_another_name() {
    let (server, ca) = tls_server("redis.internal");
    let err = RedisStore::connect(tls_options(&server, "127.0.0.1", &ca))
        .await
        .unwrap_err();
    let StoreError::Unavailable(why) = &err else {
        panic!("expected unavailable, got {err:?}");
    };
    assert!(
        why.contains("tls") && why.contains("not valid for name"),
        "{why}"
    );
}

#[tokio::test]
async fn plain_redis_to_a_tls_port_fails() {
    let (server, _) = tls_server("127.0.0.1");
    let mut o = options(&server);
    o.url = format!("redis://127.0.0.1:{}", server.tls_port());
    o.connect_timeout = std::time::Duration::from_millis(500);
    assert!(RedisStore::connect(o).await.is_err());
}
