//! Browser login at the gateway with the real OpenID provider and the
//! embedded session store: redirect, callback, session cookie, step-up
//! MFA, logout, the session admin API, and every bad callback or cookie
//! refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test: a failed step must abort the test"
)]

mod common;

use bytes::Bytes;
use common::browser::*;
use common::oidc::query_param;
use common::{jwt_payload, ECHO_SET_COOKIE};
use http_body_util::Full;

#[tokio::test]
async fn browser_login_creates_a_session_and_requests_go_through() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    let r = b.get("/app/home", &[&session], true).await;
    assert_eq!(r.status, 200, "{}", b.gw.stderr());
    let rec = b.up.records().pop().unwrap();
    let assertion = jwt_payload(rec.headers["x-portcullis-identity"].to_str().unwrap());
    assert_eq!(assertion["sub"], "bob");
    // The session cookie is the gateway's credential: never forwarded.
    let r = b.get("/app/home", &[&session, "theme=dark"], true).await;
    assert_eq!(r.status, 200);
    let rec = b.up.records().pop().unwrap();
    assert_eq!(rec.headers["cookie"], "theme=dark");
    // An API client without a session gets 401, not a redirect.
    let r = b.get("/app/home", &[], false).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.get("location").is_none());
}

#[tokio::test]
async fn the_gateways_cookies_are_its_own_in_both_directions() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    // A cookie value that is not ASCII (browsers send UTF-8) beside the
    // session: the gateway still finds its session, and still keeps it
    // from the upstream.
    let r = b.get("/app/home", &[&session, "pref=café"], true).await;
    assert_eq!(r.status, 200, "{}", b.gw.stderr());
    let rec = b.up.records().pop().unwrap();
    assert_eq!(rec.headers["cookie"].as_bytes(), "pref=café".as_bytes());
    // The application behind the route tries to plant the session and
    // login cookies, which speak for the whole origin.
    let (gw, port) = b.instance(0);
    let req = http::Request::get("/app/home")
        .header("host", format!("localhost:{port}"))
        .header("cookie", session.clone())
        .header(
            ECHO_SET_COOKIE,
            "__Host-portcullis-session=planted; Path=/; Secure; HttpOnly",
        )
        .header(
            ECHO_SET_COOKIE,
            "__Host-portcullis-login=planted; Path=/; Secure",
        )
        .header(ECHO_SET_COOKIE, "theme=dark; Path=/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = b.client().send(gw.addr, req).await.unwrap();
    assert_eq!(r.status, 200);
    let set: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["theme=dark; Path=/"]);
}

#[tokio::test]
async fn step_up_mfa_is_written_to_the_session_before_the_answer() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "alice", "pw").await;
    // alice is an admin, but logged in with a password only.
    let r = b.get("/app/admin/keys", &[&session], true).await;
    assert_eq!(r.status, 302, "{}", b.gw.stderr());
    let auth_url = location(&r);
    assert_eq!(query_param(&auth_url, "prompt").as_deref(), Some("login"));
    assert_eq!(query_param(&auth_url, "max_age").as_deref(), Some("0"));
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let callback = b.through_provider(&auth_url, "alice", "otp");
    let r = b.get(&path_of(&callback), &[&txn], true).await;
    assert_eq!(r.status, 302, "{}", b.gw.stderr());
    assert!(
        set_cookie(&r, "__Host-portcullis-session").is_none(),
        "the same session is upgraded"
    );
    // The very next request with the same cookie is allowed.
    let r = b.get("/app/admin/keys", &[&session], true).await;
    assert_eq!(r.status, 200, "{}", b.gw.stderr());
    // An API request lacking MFA is refused without a redirect.
    let bob = b.login("/app/home", "bob", "pw").await;
    let r = b.get("/app/admin/keys", &[&bob], false).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn bad_callbacks_are_refused_and_create_no_session() {
    let b = Browser::start().await;
    let r = b.get("/app/home", &[], true).await;
    let auth_url = location(&r);
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let callback = b.through_provider(&auth_url, "bob", "pw");
    let path = path_of(&callback);
    let state = query_param(&callback, "state").unwrap();

    // Wrong state.
    let wrong = path.replace(&state, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let r = b.get(&wrong, &[&txn], true).await;
    assert_eq!(r.status, 401);
    assert!(set_cookie(&r, "__Host-portcullis-session").is_none());
    // No transaction cookie (a callback replayed from elsewhere).
    let r = b.get(&path, &[], true).await;
    assert_eq!(r.status, 401);
    // Wrong iss (RFC 9207 mix-up).
    let iss = query_param(&callback, "iss").unwrap();
    let mixed = path.replace(
        &common::oidc::form_component(&iss),
        "https%3A%2F%2Fevil.test",
    );
    let r = b.get(&mixed, &[&txn], true).await;
    assert_eq!(r.status, 401);
    // Repeated parameters (RFC 6749 3.1), named as such.
    for repeated in [
        format!("{path}&iss=https%3A%2F%2Fevil.test"),
        format!("{path}&code=forged"),
        format!("{path}&st%61te={state}"),
    ] {
        let r = b.get(&repeated, &[&txn], true).await;
        assert_eq!(r.status, 401, "{repeated}");
    }
    assert!(
        b.sessions().await.is_empty(),
        "nothing is created by a refused callback"
    );
    // The real callback still works once...
    let r = b.get(&path, &[&txn], true).await;
    assert_eq!(r.status, 302, "{}", b.gw.stderr());
    // ...and its replay does not (the provider refuses a used code).
    let r = b.get(&path, &[&txn], true).await;
    assert_eq!(r.status, 401);
    assert_eq!(b.sessions().await.len(), 1);
    let audit =
        b.gw.wait_audit_where(|a| {
            a["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("login_code_refused"))
        })
        .await;
    let reasons: Vec<String> = audit
        .iter()
        .filter_map(|a| a["reason"].as_str().map(str::to_owned))
        .collect();
    for code in [
        "login_state_mismatch",
        "login_transaction_invalid",
        "login_iss_mismatch",
        "login_param_repeated",
        "login_code_refused",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(code)),
            "{code} not in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn admin_api_lists_and_revokes_and_requires_its_token() {
    let b = Browser::start().await;
    let bob = b.login("/app/home", "bob", "pw").await;
    let bob2 = b.login("/app/home", "bob", "pw").await;
    let carol = b.login("/app/home", "carol", "pw").await;
    // The API needs the admin token.
    let (status, _) = admin_request(&b.gw, "GET", "/admin/sessions", None, "").await;
    assert_eq!(status, 401);
    let (status, _) = admin_request(
        &b.gw,
        "GET",
        "/admin/sessions",
        Some("wrong-token-0123456789abcdef0123"),
        "",
    )
    .await;
    assert_eq!(status, 401);
    let list = b.sessions().await;
    assert_eq!(list.len(), 3);
    assert!(
        !list
            .iter()
            .any(|s| s.to_string().contains(bob.split('=').nth(1).unwrap())),
        "ids are never listed"
    );
    // Revoke every session of bob: the next request of each is refused.
    let (status, body) = admin_request(
        &b.gw,
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        r#"{"user": "bob"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revoked\":2"), "{body}");
    assert_eq!(b.get("/app/home", &[&bob], false).await.status, 401);
    assert_eq!(b.get("/app/home", &[&bob2], false).await.status, 401);
    assert_eq!(b.get("/app/home", &[&carol], false).await.status, 200);
    // One session by key.
    let key = b
        .sessions()
        .await
        .iter()
        .find(|s| s["subject"] == "carol")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = admin_request(
        &b.gw,
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        &format!(r#"{{"session": "{key}"}}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b.get("/app/home", &[&carol], false).await.status, 401);
    // Bad requests are refused, never "revoke everything".
    let (status, _) = admin_request(
        &b.gw,
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        "{}",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn forged_and_logged_out_cookies_get_a_fresh_login() {
    let b = Browser::start().await;
    let forged = "__Host-portcullis-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = b.get("/app/home", &[forged], true).await;
    assert_eq!(r.status, 302);
    let has =
        |a: &serde_json::Value, what: &str| a["reason"].as_str().is_some_and(|r| r.contains(what));
    let a = b.gw.wait_audit_where(|a| has(a, "session_unknown")).await;
    assert!(a.iter().any(|a| has(a, "session_unknown")), "{a:?}");
    let r = b
        .get(
            "/app/home",
            &["__Host-portcullis-session=not-a-session"],
            false,
        )
        .await;
    assert_eq!(r.status, 401);

    let session = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&session], true).await.status, 200);
    let r = b.get("/.portcullis/logout", &[&session], true).await;
    assert_eq!(r.status, 302);
    assert!(
        location(&r).starts_with(&b.provider.issuer),
        "{}",
        location(&r)
    );
    let cleared = r.headers.get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .unwrap()
            .starts_with("__Host-portcullis-session=;")
    });
    assert!(cleared);
    // The old cookie is revoked: a fresh login, with the reason recorded.
    let r = b.get("/app/home", &[&session], true).await;
    assert_eq!(r.status, 302);
    let a = b.gw.wait_audit_where(|a| has(a, "session_revoked")).await;
    assert!(a.iter().any(|a| has(a, "session_revoked")), "{a:?}");
}

#[tokio::test]
async fn a_session_ends_when_the_provider_refuses_to_refresh_its_tokens() {
    // Provider access tokens live 5 s, so the gateway refreshes them on
    // every round (each second).
    let b = Browser::start_custom(
        1,
        "    embedded: { path: sessions.redb }\n",
        &["--access-token-ttl", "5"],
        "  provider_refresh_interval: 1s\n",
    )
    .await;
    let jar = b.dir.path().join("provider-cookies.json");
    let jar_s = jar.to_str().unwrap();
    let r = b.get("/app/home", &[], true).await;
    let txn = set_cookie(&r, "__Host-portcullis-login").unwrap();
    let callback = b.through_provider_with(0, &location(&r), "bob", "pw", &["--cookie-jar", jar_s]);
    let r = b.get(&path_of(&callback), &[&txn], true).await;
    let session = set_cookie(&r, "__Host-portcullis-session").unwrap();
    // Refreshes succeed while the provider session lives: still in.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);
    let v1 = b.sessions().await[0]["version"].as_u64().unwrap();
    assert!(v1 > 2, "refreshes were written: version {v1}");
    // The user logs out at the provider: its refresh tokens end with it.
    let end = format!(
        "{}/session/end?client_id={}",
        b.provider.issuer,
        common::oidc::WEB_CLIENT
    );
    b.provider
        .browser_with(
            &end,
            &["--login", "bob", "--password", "pw", "--cookie-jar", jar_s],
        )
        .unwrap();
    // The next refresh round ends the gateway session everywhere.
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let status = b.get("/app/home", &[&session], false).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "session never ended: {}",
            b.gw.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(b
        .gw
        .stderr()
        .contains("session ended: the provider refused to refresh its tokens"));
}

#[tokio::test]
async fn a_refresh_brings_the_users_groups_as_the_provider_has_them_now() {
    // The provider reads the users' groups from this file at every token
    // it issues; its access tokens live 5 s, so each refresh round (every
    // second) refreshes the session and gets a new ID token.
    let groups = tempfile::tempdir().unwrap();
    let groups_file = groups.path().join("groups.json");
    let b = Browser::start_custom(
        1,
        "    embedded: { path: sessions.redb }\n",
        &[
            "--access-token-ttl",
            "5",
            "--groups-file",
            groups_file.to_str().unwrap(),
        ],
        "  provider_refresh_interval: 1s\n",
    )
    .await;
    let issuer = &b.provider.issuer;
    let staff_policy = format!(
        r#"revision: "claims-1"
roles:
  user: {{}}
  staff: {{}}
bindings:
  - {{ role: user, issuer: "{issuer}" }}
  - {{ role: staff, issuer: "{issuer}", claim: groups, value: staff }}
rules:
  - {{ id: app, effect: allow, roles: [user], route: app, path: "/app/home" }}
  - {{ id: staff-area, effect: allow, roles: [staff], route: app, path: "/app/staff/**" }}
"#
    );
    common::write_atomic(&b.gw.dir, "policy.yaml", &staff_policy);
    b.gw.signal("HUP");
    let session = b.login("/app/home", "bob", "pw").await;
    let status_until = |path: &'static str, want: u16| {
        let (b, session) = (&b, &session);
        async move {
            let deadline = std::time::Instant::now() + common::WAIT;
            loop {
                let status = b.get(path, &[session], false).await.status;
                if status == want {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{path} stayed {status}, never {want}: {}",
                    b.gw.stderr()
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    // bob is in `staff` (the provider's default): in, once the policy
    // above is loaded.
    status_until("/app/staff/reports", 200).await;
    // The provider's administrator moves bob out of `staff`. The session
    // lives on, and its next refresh takes the new groups over.
    std::fs::write(&groups_file, r#"{"bob": ["contractors"]}"#).unwrap();
    status_until("/app/staff/reports", 403).await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);
    let denied =
        b.gw.wait_audit_record(|a| a["path"] == "/app/staff/reports" && a["status"] == 403)
            .await;
    assert!(
        denied["reason"].as_str().unwrap().contains("roles [user]"),
        "{denied}"
    );
    // And back in, at the next refresh after that.
    std::fs::write(&groups_file, r#"{"bob": ["staff"]}"#).unwrap();
    status_until("/app/staff/reports", 200).await;
    assert_eq!(b.sessions().await.len(), 1, "the same session throughout");
}

#[tokio::test]
async fn a_session_bound_to_a_certificate_is_refused_over_any_other() {
    let b = Browser::start().await;
    let laptop = b.pki.workload("laptop", "/ns/users/device/laptop");
    let stolen = b.pki.workload("other", "/ns/users/device/other");
    let laptop_c = common::Client::new(&b.pki, Some(&laptop));
    let other_c = common::Client::new(&b.pki, Some(&stolen));
    let session = b.login_via(&laptop_c, "/app/home", "bob", "pw").await;
    assert_eq!(
        b.get_via(&laptop_c, 0, "/app/home", &[&session], false)
            .await
            .status,
        200
    );
    // The cookie over another certificate, or over none: no session.
    assert_eq!(
        b.get_via(&other_c, 0, "/app/home", &[&session], false)
            .await
            .status,
        401
    );
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 401);
    let a =
        b.gw.wait_audit_where(|a| {
            a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("session_bound_to_another_certificate"))
        })
        .await;
    assert!(a.iter().any(|a| a["reason"]
        .as_str()
        .is_some_and(|r| r.contains("session_bound_to_another_certificate"))));
    // Revoke everything bound to the laptop's certificate.
    let thumb = common::sha256_hex(&{
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(laptop.key.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    });
    let (status, body) = admin_request(
        &b.gw,
        "POST",
        "/admin/sessions/revoke",
        Some(ADMIN_TOKEN),
        &format!(r#"{{"thumbprint": "{thumb}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revoked\":1"), "{body}");
    assert_eq!(
        b.get_via(&laptop_c, 0, "/app/home", &[&session], false)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn after_a_policy_reload_live_sessions_are_judged_by_the_new_policy() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);
    let new_policy = policy(&b.provider.issuer)
        .replace("revision: \"sessions-1\"", "revision: \"sessions-2\"")
        .replace("path: \"/app/home\"", "path: \"/app/elsewhere\"");
    common::write_atomic(&b.gw.dir, "policy.yaml", &new_policy);
    b.gw.signal("HUP");
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let r = b.get("/app/home", &[&session], false).await;
        if r.status == 403 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "new policy never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let a =
        b.gw.wait_audit_where(|a| a["policy_revision"] == "sessions-2")
            .await;
    assert!(a
        .iter()
        .any(|a| a["policy_revision"] == "sessions-2" && a["status"] == 403));
}

#[tokio::test]
async fn a_session_from_a_provider_no_longer_configured_gets_a_fresh_login() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&session], true).await.status, 200);

    // A second provider replaces the first in the configuration; the
    // policy still binds users of both.
    let callback = format!("https://localhost:{}/.portcullis/callback", b.port);
    let second = common::oidc::OidcProvider::start(&b.pki, &["--web-redirect", &callback]);
    assert_ne!(second.issuer, b.provider.issuer);
    let dir = &b.gw.dir;
    let config = std::fs::read_to_string(dir.join("portcullis.yaml")).unwrap();
    let moved = config.replace(
        &format!("  issuer: {}\n", b.provider.issuer),
        &format!("  issuer: {}\n", second.issuer),
    );
    assert_ne!(moved, config);
    let both = policy(&b.provider.issuer)
        .replace("revision: \"sessions-1\"", "revision: \"sessions-2\"")
        .replace(
            "bindings:\n",
            &format!(
                "bindings:\n  - {{ role: user, issuer: \"{}\" }}\n",
                second.issuer
            ),
        );
    common::write_atomic(dir, "portcullis.yaml", &moved);
    common::write_atomic(dir, "policy.yaml", &both);
    b.gw.signal("HUP");
    assert_eq!(b.gw.wait_revision("sessions-2").await, "sessions-2");

    // The old provider's session no longer counts: a fresh login at the
    // new one, with the reason recorded.
    let r = b.get("/app/home", &[&session], true).await;
    assert_eq!(r.status, 302);
    assert!(location(&r).starts_with(&second.issuer), "{}", location(&r));
    let has = |a: &serde_json::Value| {
        a["reason"]
            .as_str()
            .is_some_and(|r| r.contains("session_issuer_not_configured"))
    };
    let a = b.gw.wait_audit_where(has).await;
    assert!(a.iter().any(has), "{a:?}");
}

#[tokio::test]
async fn session_cli_lists_and_revokes() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    let admin = format!("http://{}", b.gw.admin);
    let token_file = b.dir.path().join("gw0").join("admin-token");
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .args([
                "--admin",
                &admin,
                "--token-file",
                token_file.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = run(&["session", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("bob") && text.contains("1 session(s)"),
        "{text}"
    );
    let out = run(&["session", "revoke", "--user", "bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "revoked 1 session(s)"
    );
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 401);
    // A wrong token is refused by the gateway, and the CLI says so.
    let bad = b.dir.path().join("bad-token");
    std::fs::write(&bad, "not-the-admin-token-0123456789abcdef").unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "session",
            "list",
            "--admin",
            &admin,
            "--token-file",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test]
async fn an_idle_session_expires() {
    let b = Browser::start_custom(
        1,
        "    embedded: { path: sessions.redb }\n",
        &[],
        "  idle_timeout: 2s\n",
    )
    .await;
    let session = b.login("/app/home", "bob", "pw").await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(b.get("/app/home", &[&session], false).await.status, 401);
    let a =
        b.gw.wait_audit_where(|a| {
            a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("session_expired"))
        })
        .await;
    assert!(a.iter().any(|a| a["reason"]
        .as_str()
        .is_some_and(|r| r.contains("session_expired"))));
}

/// A logout request with extra headers.
async fn logout_with(b: &Browser, method: &str, session: &str, extra: &[(&str, &str)]) -> u16 {
    let mut req = http::Request::builder()
        .method(method)
        .uri("/.portcullis/logout")
        .header("host", format!("localhost:{}", b.port))
        .header("accept", "text/html")
        .header("cookie", session);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    b.client()
        .send(b.gw.addr, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn a_logout_started_by_another_site_is_refused() {
    let b = Browser::start().await;
    let session = b.login("/app/home", "bob", "pw").await;
    let own = format!("https://localhost:{}", b.port);
    for (method, extra) in [
        ("GET", vec![("sec-fetch-site", "cross-site")]),
        ("GET", vec![("origin", "https://evil.example")]),
        (
            "POST",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        ),
        ("POST", vec![("origin", "null")]),
        // Another port of the same host is another origin.
        ("POST", vec![("origin", "https://localhost:1")]),
        (
            "GET",
            vec![("sec-fetch-site", "cross-site"), ("origin", own.as_str())],
        ),
    ] {
        assert_eq!(
            logout_with(&b, method, &session, &extra).await,
            403,
            "{method} {extra:?}"
        );
        assert_eq!(
            b.get("/app/home", &[&session], false).await.status,
            200,
            "still logged in after {method} {extra:?}"
        );
    }
    let a =
        b.gw.wait_audit_where(|a| {
            a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("logout_cross_site"))
        })
        .await;
    assert!(!a.is_empty());

    // The gateway's own pages: a same-origin link, a form post, a plain
    // request without fetch metadata.
    for (method, extra) in [
        ("GET", vec![("sec-fetch-site", "same-origin")]),
        (
            "POST",
            vec![("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        ),
        ("GET", vec![("sec-fetch-site", "none")]),
        ("GET", vec![]),
    ] {
        let session = b.login("/app/home", "bob", "pw").await;
        assert_eq!(
            logout_with(&b, method, &session, &extra).await,
            302,
            "{method} {extra:?}"
        );
        assert_eq!(b.get("/app/home", &[&session], false).await.status, 401);
    }
}
