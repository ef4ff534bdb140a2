//! A real `redis-server` for tests, with fault injection.
//!
//! Starts the Debian `redis-server` (7.x) on 127.0.0.1 on a free port,
//! with no persistence, `DEBUG` enabled, in a temp dir, and two users:
//! `default` (no password, used by the harness's admin commands) and the
//! gateway's user [`GATEWAY_USER`] with [`GATEWAY_PASSWORD`], limited to
//! the `portcullis:*` keys. The server is killed on drop.
//!
//! Usable from any crate's tests with
//! `#[path = "../../session/tests/common/redis_server.rs"] mod redis_server;`:
//! it needs only std, the `redis` crate and `tempfile`.
//!
//! A missing `redis-server` binary is a failure with a clear message,
//! never a skipped test.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a failed setup step fails the test"
)]

use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The gateway's ACL user.
pub const GATEWAY_USER: &str = "gw";
/// The gateway user's password (a test value).
pub const GATEWAY_PASSWORD: &str = "gw-test-password-5b1e";
/// The key pattern the gateway user may touch.
pub const GATEWAY_KEYS: &str = "~portcullis:*";
/// The gateway user's commands unless the test narrows them.
pub const ALL_COMMANDS: &str = "+@all";

/// Bound on waiting for a server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on any admin command (a stopped server must not hang a test).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on waiting for a replica to finish its first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unanswered probe `PING` means "not answering".
const PROBE_WAIT: Duration = Duration::from_millis(50);
/// Value size used to fill memory.
const FILL_CHUNK: usize = 64 * 1024;
/// How far below the memory in use `fill_memory` leaves `maxmemory`.
const FILL_MARGIN: u64 = 256 * 1024;

/// TLS material for a server (PEM): its certificate chain and key, and
/// the CA it trusts for client certificates (clients need none).
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// With TLS: the TLS port (the plain port stays, for admin commands).
    tls_port: Option<u16>,
    tls: Option<TlsFiles>,
    dir: TempDir,
    /// The gateway user's command rules (for `acl_restore`).
    commands: String,
    /// `Some(port)`: a replica of the server on that port.
    replica_of: Option<u16>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// A server whose gateway user may run every command on its keys.
    pub fn start() -> Self {
        Self::start_with(ALL_COMMANDS, None)
    }

    /// A server whose gateway user may run only `commands` (ACL syntax,
    /// e.g. `+ping +hmget`), on its keys.
    pub fn start_with_acl(commands: &str) -> Self {
        Self::start_with(commands, None)
    }

    /// A read-only replica of `primary` (same users), synced before this
    /// returns.
    pub fn start_replica_of(primary: &RedisServer) -> Self {
        let replica = Self::start_with(&primary.commands, Some(primary.port));
        replica.wait_replica_synced();
        replica
    }

    /// A server that also listens with TLS on [`RedisServer::tls_port`].
    pub fn start_tls(tls: TlsFiles) -> Self {
        Self::start_full(ALL_COMMANDS, None, Some(tls))
    }

    fn start_with(commands: &str, replica_of: Option<u16>) -> Self {
        Self::start_full(commands, replica_of, None)
    }

    fn start_full(commands: &str, replica_of: Option<u16>, tls: Option<TlsFiles>) -> Self {
        let mut last_log = String::new();
        // A port picked free may be taken before the server binds it: retry.
        for _ in 0..5 {
            let mut server = Self {
                child: None,
                port: free_port(),
                tls_port: tls.as_ref().map(|_| free_port()),
                tls: tls.clone(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                commands: commands.to_owned(),
                replica_of,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start; its log:\n{last_log}");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("redis.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn write_config(&self) {
        let mut conf = format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             protected-mode yes\n\
             save \"\"\n\
             appendonly no\n\
             enable-debug-command yes\n\
             daemonize no\n\
             dir {dir}\n\
             logfile \"\"\n\
             user default on nopass ~* &* +@all\n\
             user {user} on >{password} resetkeys {keys} resetchannels -@all {commands}\n",
            port = self.port,
            dir = self.dir.path().display(),
            user = GATEWAY_USER,
            password = GATEWAY_PASSWORD,
            keys = GATEWAY_KEYS,
            commands = self.commands,
        );
        if let (Some(tls_port), Some(tls)) = (self.tls_port, &self.tls) {
            let dir = self.dir.path();
            fs::write(dir.join("server.crt"), &tls.cert_pem).expect("write server.crt");
            fs::write(dir.join("server.key"), &tls.key_pem).expect("write server.key");
            fs::write(dir.join("ca.crt"), &tls.ca_pem).expect("write ca.crt");
            conf.push_str(&format!(
                "tls-port {tls_port}\n\
                 tls-cert-file {d}/server.crt\n\
                 tls-key-file {d}/server.key\n\
                 tls-ca-cert-file {d}/ca.crt\n\
                 tls-auth-clients no\n",
                d = dir.display(),
            ));
        }
        if let Some(primary) = self.replica_of {
            conf.push_str(&format!(
                "replicaof 127.0.0.1 {primary}\nreplica-read-only yes\n"
            ));
        }
        fs::write(self.config_path(), conf).expect("write redis.conf");
    }

    /// Starts the process and waits until it answers; `Err(log)` if it
    /// exited or never answered.
    fn spawn(&mut self) -> Result<(), String> {
        self.write_config();
        let log = fs::File::create(self.log_path()).expect("create redis.log");
        let child = Command::new("redis-server")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`redis-server` is not installed: the Redis tests need it \
                 (Debian: apt-get install -y redis-server)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            if self.try_admin().is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no answer within {START_TIMEOUT:?}\n{}",
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port of a server started with `start_tls`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("server started with TLS")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:{port}` (no credentials: pass the gateway's
    /// user and password separately).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_admin(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        con.set_read_timeout(Some(ADMIN_TIMEOUT)).ok()?;
        con.set_write_timeout(Some(ADMIN_TIMEOUT)).ok()?;
        redis::cmd("PING").query::<String>(&mut con).ok()?;
        Some(con)
    }

    /// A connection as the `default` user (every command, every key),
    /// each command bounded by a timeout.
    pub fn admin(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let con = client
            .get_connection_with_timeout(ADMIN_TIMEOUT)
            .unwrap_or_else(|e| panic!("admin connection to redis-server: {e}"));
        con.set_read_timeout(Some(ADMIN_TIMEOUT)).unwrap();
        con.set_write_timeout(Some(ADMIN_TIMEOUT)).unwrap();
        con
    }

    /// Runs one admin command.
    pub fn admin_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let (name, rest) = args.split_first().expect("a command");
        let mut cmd = redis::cmd(name);
        for a in rest {
            cmd.arg(*a);
        }
        cmd.query(&mut self.admin())
            .unwrap_or_else(|e| panic!("admin command `{name}`: {e}"))
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered. Returns once it has stopped answering.
    pub fn stop(&self) {
        self.signal("STOP");
        self.wait_unresponsive();
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn cont(&self) {
        self.signal("CONT");
    }

    /// Kills the server (SIGKILL); the port is refused until `restart`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if Instant::now() > deadline => {
                    panic!("redis-server did not restart on port {}:\n{log}", self.port)
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Kills the server and starts it again on the same port, empty.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// `CLIENT PAUSE ms ALL`: every client's commands wait. Redis 7.0
    /// holds `CLIENT UNPAUSE` too, so this pause lasts its full `ms`.
    pub fn client_pause(&self, ms: u64) {
        let _: () = self.admin_cmd(&["CLIENT", "PAUSE", &ms.to_string(), "ALL"]);
    }

    /// `CLIENT PAUSE ms WRITE`: commands that may write wait, reads are
    /// served. Ends early with `client_unpause`.
    pub fn client_pause_writes(&self, ms: u64) {
        let _: () = self.admin_cmd(&["CLIENT", "PAUSE", &ms.to_string(), "WRITE"]);
    }

    /// Ends a `CLIENT PAUSE ... WRITE` early.
    pub fn client_unpause(&self) {
        let _: () = self.admin_cmd(&["CLIENT", "UNPAUSE"]);
    }

    /// `DEBUG SLEEP secs` on its own connection, in a thread: the server
    /// is blocked for `secs`. Returns once the server has stopped
    /// answering; join the handle to wait for the end of the sleep.
    pub fn debug_sleep(&self, secs: f64) -> JoinHandle<()> {
        let mut con = self.admin();
        con.set_read_timeout(Some(ADMIN_TIMEOUT + Duration::from_secs_f64(secs)))
            .unwrap();
        let cmd = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs.to_string())
            .get_packed_command();
        con.send_packed_command(&cmd).expect("send DEBUG SLEEP");
        let sleeping = thread::spawn(move || {
            let reply: redis::RedisResult<redis::Value> = con.recv_response();
            reply.expect("DEBUG SLEEP answered");
        });
        self.wait_unresponsive();
        sleeping
    }

    /// Waits until a raw `PING` goes unanswered for a moment (the server
    /// is busy or paused).
    pub fn wait_unresponsive(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut probe = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
            probe.set_read_timeout(Some(PROBE_WAIT)).unwrap();
            std::io::Write::write_all(&mut probe, b"PING\r\n").unwrap();
            let mut buf = [0u8; 16];
            match probe.read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "server keeps answering");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Takes the gateway user's rights away: existing connections get
    /// `NOPERM`, new logins `WRONGPASS`.
    pub fn acl_revoke_gateway(&self) {
        let _: () = self.admin_cmd(&["ACL", "SETUSER", GATEWAY_USER, "off", "-@all"]);
    }

    /// Gives the gateway user its rights back.
    pub fn acl_restore(&self) {
        let mut args = vec!["ACL", "SETUSER", GATEWAY_USER, "on", "-@all"];
        args.extend(self.commands.split_whitespace());
        let _: () = self.admin_cmd(&args);
    }

    /// `maxmemory bytes` with the `noeviction` policy: writes that need
    /// memory get `OOM`, nothing is evicted.
    pub fn set_maxmemory_noeviction(&self, bytes: u64) {
        let _: () = self.admin_cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
        let _: () = self.admin_cmd(&["CONFIG", "SET", "maxmemory", &bytes.to_string()]);
    }

    /// `used_memory` from `INFO memory`.
    pub fn used_memory(&self) -> u64 {
        let info: String = self.admin_cmd(&["INFO", "memory"]);
        info_field(&info, "used_memory")
            .and_then(|v| v.parse().ok())
            .expect("used_memory in INFO")
    }

    /// Writes filler keys (outside the gateway's prefix) until even a
    /// tiny write gets `OOM`, then lowers `maxmemory` a little below what
    /// is used, so that client buffers freed later do not end the
    /// out-of-memory state. Needs `set_maxmemory_noeviction` first.
    /// Returns how many keys were written.
    pub fn fill_memory(&self) -> usize {
        let max: Vec<String> = self.admin_cmd(&["CONFIG", "GET", "maxmemory"]);
        let max: u64 = max.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(max > 0, "fill_memory needs a maxmemory limit");
        let mut con = self.admin();
        let mut written = 0usize;
        for chunk in [FILL_CHUNK, 1024, 16] {
            let bound = usize::try_from(max).unwrap() / chunk + 1000;
            let value = vec![b'f'; chunk];
            let mut hit_oom = false;
            for _ in 0..bound {
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("fill:{written}"))
                    .arg(&value)
                    .query(&mut con);
                match r {
                    Ok(()) => written += 1,
                    Err(e) if e.code() == Some("OOM") => {
                        hit_oom = true;
                        break;
                    }
                    Err(e) => panic!("filling memory: {e}"),
                }
            }
            assert!(hit_oom, "no OOM after {bound} writes of {chunk} bytes");
        }
        let used = self.used_memory();
        let limit = used.saturating_sub(FILL_MARGIN).max(1);
        let _: () = self.admin_cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]);
        written
    }

    /// Waits until this replica's link to its primary is up.
    pub fn wait_replica_synced(&self) {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            let info: String = self.admin_cmd(&["INFO", "replication"]);
            if info_field(&info, "master_link_status") == Some("up") {
                return;
            }
            assert!(Instant::now() < deadline, "replica not synced:\n{info}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything stored under `prefix`: each key followed by its value(s),
    /// read as data (not the RDB encoding, which may compress).
    pub fn dump_prefix(&self, prefix: &str) -> Vec<u8> {
        let mut con = self.admin();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut con)
            .unwrap();
        let mut out = Vec::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut con).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut con).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut con)
                    .unwrap(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut con)
                    .unwrap(),
                "none" => Vec::new(),
                other => panic!("unexpected key type `{other}`"),
            };
            out.extend_from_slice(&key);
            out.push(b'\n');
            for v in values {
                out.extend_from_slice(&v);
                out.push(b'\n');
            }
        }
        out
    }
}

/// A `field:value` line of `INFO` output.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == field).then(|| v.trim())
    })
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped (SIGSTOP) server.
        self.kill();
    }
}
