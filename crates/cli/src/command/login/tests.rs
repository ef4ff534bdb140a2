use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::callback::{handle, Shared};
use super::https::HttpsUrl;
use super::oauth::{self, CallbackExpect, ErrorResponse};
use super::*;

const ISSUER: &str = "https://id.example.test";

fn expect(iss_required: bool) -> CallbackExpect {
    CallbackExpect {
        state: Secret::new("the-state".to_owned()),
        issuer: ISSUER.to_owned(),
        iss_required,
    }
}

fn iss() -> String {
    oauth::encode(ISSUER)
}

// ------------------------------------------------------------- PKCE

#[test]
fn pkce_s256_matches_rfc7636_appendix_b() {
    let p = oauth::Pkce::from_verifier(Secret::new(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned(),
    ));
    assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

#[test]
fn pkce_verifier_is_random_43_unreserved_chars() {
    let a = oauth::Pkce::new().unwrap();
    let b = oauth::Pkce::new().unwrap();
    assert_eq!(a.verifier.expose().len(), 43);
    assert!(a
        .verifier
        .expose()
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_ne!(a.verifier.expose(), b.verifier.expose());
    assert_ne!(a.challenge, a.verifier.expose());
}

#[test]
fn state_has_at_least_128_bits() {
    let s = oauth::random_b64(oauth::STATE_BYTES).unwrap();
    // 22 base64url characters carry 132 bits.
    assert!(s.len() >= 22, "{}", s.len());
    assert_ne!(*s, *oauth::random_b64(oauth::STATE_BYTES).unwrap());
}

#[test]
fn authorization_url_has_s256_and_never_plain() {
    let endpoint = HttpsUrl::parse("https://id.example.test/auth").unwrap();
    let url = oauth::authorization_url(
        &endpoint,
        &oauth::AuthRequest {
            client_id: "cli",
            redirect_uri: "http://127.0.0.1:5000/callback",
            scope: "openid api:read",
            state: "st",
            nonce: Some("no"),
            code_challenge: "ch",
            resource: Some("https://api.example.test"),
        },
    );
    assert!(url.starts_with("https://id.example.test/auth?response_type=code&"));
    assert!(url.contains("&code_challenge=ch&code_challenge_method=S256"));
    assert!(!url.contains("plain"));
    assert!(url.contains("&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback&"));
    assert!(url.contains("&scope=openid%20api%3Aread&"));
    assert!(url.contains("&nonce=no"));
    assert!(url.contains("&resource=https%3A%2F%2Fapi.example.test"));
}

#[test]
fn authorization_url_keeps_an_existing_query() {
    let endpoint = HttpsUrl::parse("https://id.example.test/auth?tenant=a").unwrap();
    let url = oauth::authorization_url(
        &endpoint,
        &oauth::AuthRequest {
            client_id: "cli",
            redirect_uri: "http://127.0.0.1:1/callback",
            scope: "api:read",
            state: "st",
            nonce: None,
            code_challenge: "ch",
            resource: None,
        },
    );
    assert!(url.starts_with("https://id.example.test/auth?tenant=a&response_type=code&"));
    assert!(!url.contains("nonce"));
}

// --------------------------------------------------------- encoding

#[test]
fn form_encoding_round_trips() {
    let raw = "a b&c=d/é~-._+%";
    let encoded = oauth::encode(raw);
    assert_eq!(encoded, "a%20b%26c%3Dd%2F%C3%A9~-._%2B%25");
    assert_eq!(oauth::decode(&encoded).unwrap(), raw);
    assert_eq!(oauth::decode("a+b").unwrap(), "a b");
}

#[test]
fn decode_refuses_bad_percent_encoding() {
    assert!(oauth::decode("%4").is_err());
    assert!(oauth::decode("%zz").is_err());
    assert!(oauth::decode("%ff").is_err(), "not UTF-8");
}

#[test]
fn printable_strips_control_characters_and_bounds_length() {
    assert_eq!(error::printable("a\x1b[31mb\nc"), "a?[31mb?c");
    let long = "x".repeat(error::MAX_SHOWN_TEXT + 10);
    assert_eq!(error::printable(&long).len(), error::MAX_SHOWN_TEXT + 3);
}

// ------------------------------------------------------------- URLs

#[test]
fn http_issuer_is_refused() {
    let e = oauth::validate_issuer("http://id.example.test").unwrap_err();
    assert!(matches!(e, LoginError::NotHttps { .. }), "{e}");
    assert!(e.to_string().contains("must use https"), "{e}");
}

#[test]
fn issuer_with_query_fragment_or_userinfo_is_refused() {
    for bad in [
        "https://id.example.test/?a=b",
        "https://id.example.test/#x",
        "https://user@id.example.test",
        "id.example.test",
        "ftp://id.example.test",
    ] {
        assert!(oauth::validate_issuer(bad).is_err(), "{bad}");
    }
}

#[test]
fn https_url_parses_host_port_and_path() {
    let u = HttpsUrl::parse("https://127.0.0.1:8443/a/b?c=d").unwrap();
    assert_eq!(u.as_str(), "https://127.0.0.1:8443/a/b?c=d");
    let v6 = HttpsUrl::parse("https://[::1]:8443/").unwrap();
    assert_eq!(v6.as_str(), "https://[::1]:8443/");
}

#[test]
fn discovery_url_appends_well_known_to_the_issuer_path() {
    assert_eq!(
        oauth::discovery_url("https://id.example.test/realms/a/")
            .unwrap()
            .as_str(),
        "https://id.example.test/realms/a/.well-known/openid-configuration"
    );
}

#[test]
fn resource_must_be_absolute_without_fragment() {
    assert!(validate_resource("https://api.example.test").is_ok());
    assert!(validate_resource("urn:x").is_err());
    assert!(validate_resource("/relative").is_err());
    assert!(validate_resource("https://api.example.test/#f").is_err());
}

// -------------------------------------------------------- discovery

fn metadata(issuer: &str, extra: &str) -> String {
    format!(
        r#"{{"issuer":"{issuer}","authorization_endpoint":"https://id.example.test/auth",
        "token_endpoint":"https://id.example.test/token"{extra}}}"#
    )
}

#[test]
fn discovery_accepts_matching_issuer() {
    let m = oauth::check_metadata_json(
        ISSUER,
        &metadata(
            ISSUER,
            r#","authorization_response_iss_parameter_supported":true,"code_challenge_methods_supported":["S256"]"#,
        ),
    )
    .unwrap();
    assert!(m.iss_parameter_supported);
    assert!(m.device_authorization_endpoint.is_none());
}

#[test]
fn discovery_refuses_issuer_mismatch() {
    for other in [
        "https://evil.example.test",
        "https://id.example.test/",
        "https://ID.example.test",
    ] {
        let e = oauth::check_metadata_json(ISSUER, &metadata(other, "")).unwrap_err();
        assert!(
            matches!(e, LoginError::IssuerMismatch { .. }),
            "{other}: {e}"
        );
    }
}

#[test]
fn discovery_refuses_plain_only_pkce() {
    let e = oauth::check_metadata_json(
        ISSUER,
        &metadata(ISSUER, r#","code_challenge_methods_supported":["plain"]"#),
    )
    .unwrap_err();
    assert!(matches!(e, LoginError::NoS256), "{e}");
}

#[test]
fn discovery_refuses_http_endpoints() {
    let json = format!(
        r#"{{"issuer":"{ISSUER}","authorization_endpoint":"https://id.example.test/auth",
        "token_endpoint":"http://id.example.test/token"}}"#
    );
    let e = oauth::check_metadata_json(ISSUER, &json).unwrap_err();
    assert!(matches!(e, LoginError::NotHttps { .. }), "{e}");
}

#[test]
fn discovery_refuses_missing_token_endpoint() {
    let json =
        format!(r#"{{"issuer":"{ISSUER}","authorization_endpoint":"https://id.example.test/a"}}"#);
    let e = oauth::check_metadata_json(ISSUER, &json).unwrap_err();
    assert!(
        matches!(
            e,
            LoginError::MissingEndpoint {
                field: "token_endpoint"
            }
        ),
        "{e}"
    );
}

// --------------------------------------------------------- callback

#[test]
fn callback_with_right_state_and_iss_yields_the_code() {
    let q = format!("code=abc&state=the-state&iss={}", iss());
    let code = oauth::check_callback(&q, &expect(true)).unwrap();
    assert_eq!(code.expose(), "abc");
}

#[test]
fn callback_without_iss_is_accepted_when_not_promised() {
    let code = oauth::check_callback("code=abc&state=the-state", &expect(false)).unwrap();
    assert_eq!(code.expose(), "abc");
}

#[test]
fn callback_with_wrong_or_missing_state_is_refused() {
    for q in [
        format!("code=abc&state=other&iss={}", iss()),
        format!("code=abc&state=the-stat&iss={}", iss()),
        format!("code=abc&iss={}", iss()),
        format!("code=abc&state=&iss={}", iss()),
    ] {
        let e = oauth::check_callback(&q, &expect(true)).unwrap_err();
        assert!(matches!(e, LoginError::StateMismatch), "{q}: {e}");
    }
}

#[test]
fn callback_with_wrong_iss_is_refused() {
    let q = "code=abc&state=the-state&iss=https%3A%2F%2Fevil.example.test";
    let e = oauth::check_callback(q, &expect(false)).unwrap_err();
    assert!(
        matches!(e, LoginError::CallbackIssuerMismatch { .. }),
        "{e}"
    );
}

#[test]
fn callback_without_promised_iss_is_refused() {
    let e = oauth::check_callback("code=abc&state=the-state", &expect(true)).unwrap_err();
    assert!(matches!(e, LoginError::CallbackIssuerMissing), "{e}");
}

#[test]
fn callback_error_is_reported_after_state_check() {
    let q = format!(
        "error=access_denied&error_description=User+said+no%0A&state=the-state&iss={}",
        iss()
    );
    let e = oauth::check_callback(&q, &expect(true)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the authorization server refused the login: `access_denied` (User said no?)"
    );
    // An error with a forged state is a state mismatch, not a refusal.
    let forged = "error=access_denied&state=nope";
    let e = oauth::check_callback(forged, &expect(false)).unwrap_err();
    assert!(matches!(e, LoginError::StateMismatch), "{e}");
}

#[test]
fn callback_with_repeated_parameter_is_refused() {
    let q = format!("code=abc&code=def&state=the-state&iss={}", iss());
    let e = oauth::check_callback(&q, &expect(true)).unwrap_err();
    assert!(matches!(e, LoginError::CallbackMalformed(_)), "{e}");
    let q = format!("code=abc&state=the-state&state=the-state&iss={}", iss());
    assert!(oauth::check_callback(&q, &expect(true)).is_err());
}

#[test]
fn callback_without_code_is_refused() {
    let q = format!("state=the-state&iss={}", iss());
    let e = oauth::check_callback(&q, &expect(true)).unwrap_err();
    assert!(matches!(e, LoginError::CallbackMalformed(_)), "{e}");
}

fn shared(host: &str) -> Shared {
    Shared {
        expect: expect(false),
        host: host.to_owned(),
        decided: AtomicBool::new(false),
        foreign: AtomicUsize::new(0),
    }
}

fn get(target: &str, host: &str) -> http::Request<()> {
    http::Request::get(target)
        .header("host", host)
        .body(())
        .unwrap()
}

#[test]
fn loopback_decides_once_and_ignores_other_paths() {
    let s = shared("127.0.0.1:5000");
    let (status, _, outcome) = handle(&get("/favicon.ico", "127.0.0.1:5000"), &s);
    assert_eq!(status, 404);
    assert!(outcome.is_none());
    let (status, body, outcome) = handle(
        &get("/callback?code=c&state=the-state", "127.0.0.1:5000"),
        &s,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(outcome.unwrap().unwrap().expose(), "c");
    // A replay after the decision changes nothing.
    let (status, _, outcome) = handle(
        &get("/callback?code=d&state=the-state", "127.0.0.1:5000"),
        &s,
    );
    assert_eq!(status, 400);
    assert!(outcome.is_none());
}

#[test]
fn loopback_ignores_callbacks_with_another_state_then_decides() {
    let s = shared("127.0.0.1:5000");
    // Wrong, missing, repeated or undecodable state: answered, not decided.
    for target in [
        "/callback?code=c&state=bad",
        "/callback?code=c",
        "/callback?error=access_denied",
        "/callback?code=c&state=the-state&state=the-state",
        "/callback?code=c&state=%zz",
    ] {
        let (status, body, outcome) = handle(&get(target, "127.0.0.1:5000"), &s);
        assert_eq!(status, 400, "{target}");
        assert!(body.contains("still waiting"), "{body}");
        assert!(outcome.is_none(), "{target}");
    }
    // The real callback still decides.
    let (status, _, outcome) = handle(
        &get("/callback?code=c&state=the-state", "127.0.0.1:5000"),
        &s,
    );
    assert_eq!(status, 200);
    assert_eq!(outcome.unwrap().unwrap().expose(), "c");
}

#[test]
fn loopback_ends_the_login_after_too_many_foreign_callbacks() {
    let s = shared("127.0.0.1:5000");
    let bad = get("/callback?code=c&state=bad", "127.0.0.1:5000");
    for _ in 0..super::callback::MAX_FOREIGN_CALLBACKS {
        let (status, _, outcome) = handle(&bad, &s);
        assert_eq!(status, 400);
        assert!(outcome.is_none());
    }
    let (status, body, outcome) = handle(&bad, &s);
    assert_eq!(status, 400);
    assert!(body.contains("`state` does not match"), "{body}");
    assert!(matches!(outcome, Some(Err(LoginError::StateMismatch))));
    let (status, _, outcome) = handle(
        &get("/callback?code=c&state=the-state", "127.0.0.1:5000"),
        &s,
    );
    assert_eq!(status, 400, "decided already");
    assert!(outcome.is_none());
}

#[test]
fn loopback_refuses_foreign_host_and_post_without_deciding() {
    let s = shared("127.0.0.1:5000");
    let (status, _, outcome) = handle(
        &get("/callback?code=c&state=the-state", "evil.example:5000"),
        &s,
    );
    assert_eq!(status, 400);
    assert!(outcome.is_none());
    let post = http::Request::post("/callback?code=c&state=the-state")
        .header("host", "127.0.0.1:5000")
        .body(())
        .unwrap();
    let (status, _, outcome) = handle(&post, &s);
    assert_eq!(status, 405);
    assert!(outcome.is_none());
    // The real callback still decides afterwards.
    let (status, _, outcome) = handle(
        &get("/callback?code=c&state=the-state", "127.0.0.1:5000"),
        &s,
    );
    assert_eq!(status, 200);
    assert!(outcome.unwrap().is_ok());
}

#[test]
fn loopback_binds_127_0_0_1_only() {
    let rt = runtime().unwrap();
    let uri = rt.block_on(async {
        let l = callback::Loopback::bind().await.unwrap();
        l.redirect_uri()
    });
    assert!(uri.starts_with("http://127.0.0.1:"), "{uri}");
    assert!(uri.ends_with("/callback"), "{uri}");
}

// ---------------------------------------------------------- ID token

fn id_token(claims: &serde_json::Value) -> Secret {
    Secret::new(format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    ))
}

#[test]
fn id_token_claims_are_checked() {
    let nonce = Secret::new("n1".to_owned());
    let good = serde_json::json!({"iss": ISSUER, "aud": "cli", "nonce": "n1", "sub": "alice"});
    let sub = oauth::check_id_token(&id_token(&good), ISSUER, "cli", Some(&nonce)).unwrap();
    assert_eq!(sub.as_deref(), Some("alice"));
    let many = serde_json::json!({"iss": ISSUER, "aud": ["x", "cli"], "nonce": "n1"});
    assert!(oauth::check_id_token(&id_token(&many), ISSUER, "cli", Some(&nonce)).is_ok());

    for bad in [
        serde_json::json!({"iss": "https://evil.example.test", "aud": "cli", "nonce": "n1"}),
        serde_json::json!({"iss": ISSUER, "aud": "other", "nonce": "n1"}),
        serde_json::json!({"iss": ISSUER, "aud": "cli", "nonce": "n2"}),
        serde_json::json!({"iss": ISSUER, "aud": "cli"}),
        serde_json::json!({"aud": "cli", "nonce": "n1"}),
    ] {
        let e = oauth::check_id_token(&id_token(&bad), ISSUER, "cli", Some(&nonce)).unwrap_err();
        assert!(matches!(e, LoginError::IdToken(_)), "{bad}: {e}");
    }
    assert!(oauth::check_id_token(&Secret::new("a.b".to_owned()), ISSUER, "cli", None).is_err());
}

// ------------------------------------------------------ token answers

fn response(status: u16, body: &str) -> https::Response {
    https::Response {
        status,
        body: zeroize::Zeroizing::new(body.as_bytes().to_vec()),
    }
}

#[test]
fn token_parse_errors_never_quote_values() {
    let url = HttpsUrl::parse("https://id.example.test/token").unwrap();
    // `expires_in` has the wrong type; serde would quote the string.
    let body = r#"{"access_token":"SECRET-AT","token_type":"Bearer","expires_in":"SECRET-X"}"#;
    let Err(e) = oauth::parse_answer::<oauth::TokenResponse>(&url, &response(200, body)) else {
        panic!("parsed");
    };
    let msg = e.to_string();
    assert!(!msg.contains("SECRET"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn token_refusal_is_reported_with_its_code() {
    let url = HttpsUrl::parse("https://id.example.test/token").unwrap();
    let body = r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#;
    let Ok(oauth::Outcome::Refused(e)) =
        oauth::parse_answer::<oauth::TokenResponse>(&url, &response(400, body))
    else {
        panic!("not a refusal");
    };
    assert_eq!(
        e.into_token_error().to_string(),
        "the token endpoint refused the request: `invalid_grant` (grant request is invalid)"
    );
    let Err(e) = oauth::parse_answer::<oauth::TokenResponse>(&url, &response(500, "oops")) else {
        panic!("parsed");
    };
    assert!(matches!(e, LoginError::Status { status: 500, .. }), "{e}");
}

#[test]
fn token_response_debug_redacts_tokens() {
    let url = HttpsUrl::parse("https://id.example.test/token").unwrap();
    let body = r#"{"access_token":"SECRET-AT","token_type":"Bearer","refresh_token":"SECRET-RT","id_token":"SECRET-ID","expires_in":60}"#;
    let Ok(oauth::Outcome::Ok(t)) =
        oauth::parse_answer::<oauth::TokenResponse>(&url, &response(200, body))
    else {
        panic!("not parsed");
    };
    assert_eq!(t.access_token.expose(), "SECRET-AT");
    let debug = format!("{t:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
}

// ------------------------------------------------------- device grant

fn refusal(error: &str) -> ErrorResponse {
    ErrorResponse {
        error: error.to_owned(),
        error_description: None,
    }
}

#[test]
fn device_polling_follows_rfc8628() {
    assert_eq!(
        oauth::next_poll(5, refusal("authorization_pending")).unwrap(),
        5
    );
    assert_eq!(oauth::next_poll(5, refusal("slow_down")).unwrap(), 10);
    assert_eq!(
        oauth::next_poll(oauth::MAX_POLL_INTERVAL_SECS, refusal("slow_down")).unwrap(),
        oauth::MAX_POLL_INTERVAL_SECS
    );
    assert!(matches!(
        oauth::next_poll(5, refusal("access_denied")),
        Err(LoginError::DeviceDenied)
    ));
    assert!(matches!(
        oauth::next_poll(5, refusal("expired_token")),
        Err(LoginError::DeviceExpired)
    ));
    assert!(matches!(
        oauth::next_poll(5, refusal("invalid_client")),
        Err(LoginError::TokenEndpoint { .. })
    ));
    assert_eq!(oauth::first_interval(None), 5);
    assert_eq!(oauth::first_interval(Some(0)), 1);
    assert_eq!(
        oauth::first_interval(Some(10_000)),
        oauth::MAX_POLL_INTERVAL_SECS
    );
}

// ------------------------------------------------------------ token

fn stored(expires_at: Option<u64>) -> StoredLogin {
    StoredLogin {
        issuer: ISSUER.to_owned(),
        client_id: "cli".to_owned(),
        token_endpoint: format!("{ISSUER}/token"),
        access_token: Secret::new("at".to_owned()),
        refresh_token: None,
        id_token: None,
        expires_at,
        scope: None,
        resource: None,
        ca_pem: None,
        ca: None,
        updated_at: 1,
    }
}

#[test]
fn freshness_uses_the_refresh_margin() {
    let now = 1_000_000;
    assert!(is_fresh(&stored(None), now));
    assert!(is_fresh(&stored(Some(now + REFRESH_MARGIN_SECS + 1)), now));
    assert!(!is_fresh(&stored(Some(now + REFRESH_MARGIN_SECS)), now));
    assert!(!is_fresh(&stored(Some(now - 5)), now));
}

#[test]
fn timeout_must_be_positive_and_bounded() {
    assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
    assert!(parse_timeout("0s").is_err());
    assert!(parse_timeout("2h").is_err());
    assert!(parse_timeout("5").is_err());
}

// ------------------------------------------------------- CA bundles

fn root_pem(name: &str) -> (String, String) {
    let ca = portcullis_pki::Ca::new_root(name).unwrap();
    (ca.cert_pem().to_owned(), ca.key_pem().to_string())
}

#[test]
fn ca_bundle_keeps_only_the_certificates_and_round_trips() {
    let (a, a_key) = root_pem("Root A");
    let (b, _) = root_pem("Root B");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ca.pem");
    // A certificate-and-key file: the key is not kept.
    std::fs::write(&file, format!("comment\n{a}{a_key}{b}")).unwrap();
    let bundle = CaBundle::read(&file).unwrap();
    let pem = bundle.to_pem();
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(!pem.contains("PRIVATE KEY"), "{pem}");
    assert!(!pem.contains("comment"), "{pem}");
    assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
    let again = CaBundle::from_stored(&pem).unwrap();
    assert_eq!(again.to_pem(), pem);
    let der = |p: &str| {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::pem_slice_iter(p.as_bytes())
            .map(|c| c.unwrap().to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(der(&pem), der(&format!("{a}{b}")));
}

#[test]
fn ca_bundle_refuses_no_certificate_a_missing_file_and_a_huge_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ca.pem");
    let (_, key) = root_pem("Root A");
    for text in [String::new(), "not PEM".to_owned(), key] {
        std::fs::write(&file, &text).unwrap();
        let e = CaBundle::read(&file).unwrap_err();
        assert!(matches!(e, LoginError::Ca { .. }), "{e}");
        assert!(e.to_string().contains("ca.pem"), "{e}");
    }
    let e = CaBundle::read(&tmp.path().join("absent.pem")).unwrap_err();
    assert!(matches!(e, LoginError::Ca { .. }), "{e}");
    let (a, _) = root_pem("Root A");
    let padding = "x".repeat(https::MAX_CA_BYTES as usize);
    std::fs::write(&file, format!("{a}{padding}")).unwrap();
    let e = CaBundle::read(&file).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    let e = CaBundle::from_stored("garbage").unwrap_err();
    assert!(e.to_string().contains("stored at login"), "{e}");
}

#[test]
fn a_refresh_trusts_the_stored_certificates_over_the_old_path() {
    let (a, _) = root_pem("Root A");
    let (b, _) = root_pem("Root B");
    let tmp = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (tmp.path().join("a.pem"), tmp.path().join("b.pem"));
    std::fs::write(&file_a, &a).unwrap();
    std::fs::write(&file_b, &b).unwrap();
    let pem_a = CaBundle::read(&file_a).unwrap().to_pem();
    let pem_b = CaBundle::read(&file_b).unwrap().to_pem();
    let args = |ca: Option<&Path>| TokenArgs {
        issuer: None,
        client_id: None,
        ca: ca.map(Path::to_owned),
    };
    let mut login = stored(None);
    login.ca_pem = Some(pem_a.clone());
    // A path left next to stored certificates is not read.
    login.ca = Some(tmp.path().join("absent.pem"));
    let (ca, migrate) = refresh_ca(&args(None), &login).unwrap();
    assert_eq!(ca.unwrap().to_pem(), pem_a);
    assert!(!migrate);
    // `--ca` overrides and is not stored.
    let (ca, migrate) = refresh_ca(&args(Some(&file_b)), &login).unwrap();
    assert_eq!(ca.unwrap().to_pem(), pem_b);
    assert!(!migrate);
    // A version 1 login: the path is read now, its certificates stored.
    login.ca_pem = None;
    login.ca = Some(file_b.clone());
    let (ca, migrate) = refresh_ca(&args(None), &login).unwrap();
    assert_eq!(ca.unwrap().to_pem(), pem_b);
    assert!(migrate);
    login.ca = None;
    let (ca, migrate) = refresh_ca(&args(None), &login).unwrap();
    assert!(ca.is_none() && !migrate);
}

// ---------------------------------------------- storing before a login

fn login_args(issuer: String, ca: &Path, device: bool) -> LoginArgs {
    LoginArgs {
        issuer,
        client_id: "cli".to_owned(),
        scope: DEFAULT_SCOPE.to_owned(),
        resource: None,
        ca: Some(ca.to_owned()),
        no_browser: true,
        device,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn a_locked_store_stops_the_login_before_the_provider_is_contacted() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, root_pem("Root A").0).unwrap();
    let dir = tmp.path().join("cfg");
    let store = TokenStore::at(dir.clone()).with_lock_wait(Duration::from_millis(200));
    // Another holder of the lock (the same flock(2) lock on another open
    // file, as another process would hold it).
    let held = TokenStore::at(dir.clone()).lock().unwrap();
    let lock = dir.join(token_store::LOCK_FILE);
    // The "provider": anything connecting here is a failure of the test.
    let provider = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    provider.set_nonblocking(true).unwrap();
    let issuer = format!(
        "https://127.0.0.1:{}",
        provider.local_addr().unwrap().port()
    );
    let rt = runtime().unwrap();
    for device in [false, true] {
        let args = login_args(issuer.clone(), &ca, device);
        let e = rt.block_on(login(&args, &store)).unwrap_err();
        assert!(
            matches!(
                e,
                LoginError::NotStarted(token_store::StoreError::Locked { .. })
            ),
            "device {device}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&lock.display().to_string()), "{msg}");
        assert!(msg.contains("another running portcullis process"), "{msg}");
        assert!(
            matches!(provider.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the provider was contacted"
        );
    }

    // Lock released: the login goes on to discovery (which fails here: the
    // listener speaks no TLS) and holds no lock after.
    drop(held);
    provider.set_nonblocking(false).unwrap();
    let accepted = std::thread::spawn(move || provider.accept().is_ok());
    let args = login_args(issuer, &ca, false);
    let e = rt.block_on(login(&args, &store)).unwrap_err();
    assert!(accepted.join().unwrap(), "the provider was not contacted");
    assert!(
        matches!(e, LoginError::Tls { .. } | LoginError::Http { .. }),
        "{e}"
    );
    drop(store.lock_within(Duration::ZERO).unwrap());
}
