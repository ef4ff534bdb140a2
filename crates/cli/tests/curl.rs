//! The gateway with curl as the client (OpenSSL or GnuTLS on the client
//! side, not rustls): the commands the quickstart prints work.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::process::Command;

use common::*;

/// Runs curl; returns (HTTP status, curl's exit code). Status 0 means no
/// HTTP response.
fn curl(env: &TestEnv, cert: Option<&ClientCert>, extra: &[&str], path: &str) -> (u16, i32) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .arg("--cacert")
    .arg(&env.pki.ca_bundle)
    .args([
        "--resolve",
        &format!("localhost:{}:127.0.0.1", env.gw.addr.port()),
    ]);
    if let Some(c) = cert {
        cmd.arg("--cert")
            .arg(&c.cert_path)
            .arg("--key")
            .arg(&c.key_path);
    }
    cmd.args(extra)
        .arg(format!("https://localhost:{}{path}", env.gw.addr.port()));
    let out = cmd
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, out.status.code().unwrap_or(-1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_clients_get_allowed_forbidden_and_refused() {
    let env = TestEnv::start().await;
    let env = tokio::task::spawn_blocking(move || {
        assert_eq!(
            curl(&env, Some(&env.reader_cert), &[], "/api/hello"),
            (200, 0)
        );
        assert_eq!(
            curl(&env, Some(&env.reader_cert), &["-X", "POST"], "/api/hello"),
            (403, 0)
        );
        assert_eq!(
            curl(
                &env,
                Some(&env.writer_cert),
                &["-X", "POST", "-d", "hi"],
                "/api/hello"
            ),
            (200, 0)
        );
        assert_eq!(
            curl(&env, Some(&env.reader_cert), &["--http2"], "/api/hello"),
            (200, 0)
        );
        assert_eq!(
            curl(
                &env,
                Some(&env.reader_cert),
                &["--tlsv1.2", "--tls-max", "1.2"],
                "/api/hello"
            ),
            (200, 0)
        );
        // Without a certificate the handshake fails: no HTTP status at all.
        let (status, code) = curl(&env, None, &[], "/api/hello");
        assert_eq!(status, 0);
        assert_ne!(code, 0, "curl must report the TLS failure");
        env
    })
    .await
    .unwrap();
    // Four requests allowed, one forbidden, none for the refused handshake.
    assert_eq!(env.up.count(), 4);
    let audit = env.gw.wait_audit(6).await;
    assert_eq!(audit.iter().filter(|r| r["decision"] == "allow").count(), 4);
    assert!(audit.iter().any(|r| r["status"] == 403));
    assert!(audit.iter().any(|r| r["reason"]
        .as_str()
        .is_some_and(|s| s.contains("no_client_cert"))));
}
