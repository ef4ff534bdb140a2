use std::path::{Path, PathBuf};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = portcullis_pki::Ca::new_root("Config Test Root").unwrap();
        let server = root
            .issue(&portcullis_pki::IssueRequest::server("localhost"))
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), root.cert_pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.path().join("server.key"), server.key_pem.as_str()).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        std::fs::write(
            dir.path().join("policy.yaml"),
            "revision: 1\nroles: { r: {} }\nrules:\n  - { id: a, effect: allow, roles: [r], route: api, path: /api/** }\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("portcullis.yaml")
    }

    fn load(&self, yaml: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(&self.path(), yaml)
    }
}

const VALID: &str = r#"
listeners:
  - name: public
    bind: 127.0.0.1:8443
    tls:
      cert: server.pem
      key: server.key
      client_ca: ca.pem
      spiffe_trust_domains: [example.org]
routes:
  - name: api
    path_prefix: /api/
    methods: [GET]
    upstream:
      url: http://127.0.0.1:9000
      request_timeout: 250ms
policy:
  file: policy.yaml
"#;

#[test]
fn valid_config_loads_with_defaults() {
    let f = Fixture::new();
    let c = f.load(VALID).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.bind.to_string(), "127.0.0.1:8443");
    assert_eq!(l.tls.client_auth.roots.len(), 1);
    assert_eq!(
        l.tls.client_auth.mode,
        portcullis_authn::ClientAuthMode::Required,
        "verification is required by default"
    );
    assert_eq!(l.limits.max_header_count, DEFAULT_MAX_HEADER_COUNT);
    assert_eq!(c.routes[0].path_prefix, "/api");
    assert_eq!(
        c.routes[0].upstream.request_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        c.admin.as_ref().unwrap().bind.to_string(),
        DEFAULT_ADMIN_BIND
    );
    assert!(c.policy.path.ends_with("policy.yaml"));
    assert!(c.assertion.signing_key_pkcs8.is_none());
    assert_eq!(c.assertion.scope, AssertionScope::Request);
    let p = load_policy(&c.policy.path, &c.routes).unwrap();
    assert_eq!(p.policy.revision(), "1");
    assert_eq!(p.sha256.len(), 64);
    assert!(
        !format!("{l:?}").contains("PRIVATE"),
        "keys are redacted in Debug"
    );
}

fn err(f: &Fixture, yaml: &str) -> ConfigError {
    f.load(yaml).expect_err("config must be refused")
}

#[test]
fn assertion_scope_is_request_or_connection() {
    let f = Fixture::new();
    let c = f
        .load(&format!(
            "{VALID}identity_assertion:\n  scope: connection\n"
        ))
        .unwrap();
    assert_eq!(c.assertion.scope, AssertionScope::Connection);
    let c = f
        .load(&format!("{VALID}identity_assertion:\n  scope: request\n"))
        .unwrap();
    assert_eq!(c.assertion.scope, AssertionScope::Request);
    let e = err(
        &f,
        &format!("{VALID}identity_assertion:\n  scope: session\n"),
    )
    .to_string();
    assert!(e.contains("identity_assertion.scope"), "{e}");
    assert!(e.contains("`session` is not a scope"), "{e}");
}

#[test]
fn via_is_sent_by_default_under_a_token_pseudonym() {
    let f = Fixture::new();
    assert_eq!(f.load(VALID).unwrap().via.as_deref(), Some("portcullis"));
    let c = f
        .load(&format!("{VALID}via:\n  pseudonym: edge-1.eu\n"))
        .unwrap();
    assert_eq!(c.via.as_deref(), Some("edge-1.eu"));
    let c = f.load(&format!("{VALID}via:\n  send: false\n")).unwrap();
    assert_eq!(c.via, None);
    let long = "p".repeat(MAX_VIA_PSEUDONYM_LEN + 1);
    for (bad, why) in [
        ("''", "is not a token"),
        ("'edge 1'", "is not a token"),
        ("'edge,1'", "is not a token"),
        ("'edge(1)'", "is not a token"),
        ("'edge\\r\\n'", "is not a token"),
        (long.as_str(), "is not a token"),
    ] {
        let e = err(&f, &format!("{VALID}via:\n  pseudonym: {bad}\n")).to_string();
        assert!(e.contains("via.pseudonym"), "{bad}: {e}");
        assert!(e.contains(why), "{bad}: {e}");
    }
    let e = err(
        &f,
        &format!("{VALID}via:\n  send: false\n  pseudonym: edge\n"),
    )
    .to_string();
    assert!(
        e.contains("via.pseudonym") && e.contains("`via.send` is false"),
        "{e}"
    );
    let e = err(&f, &format!("{VALID}via:\n  comment: hi\n")).to_string();
    assert!(e.contains("comment"), "{e}");
}

#[test]
fn errors_name_the_key_path_and_the_problem() {
    let f = Fixture::new();
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "client_ca: ca.pem",
            "client_ca: empty.pem",
            "listeners[0].tls.client_ca",
            "empty.pem",
        ),
        (
            "client_ca: ca.pem",
            "client_ca: missing.pem",
            "listeners[0].tls.client_ca",
            "missing.pem",
        ),
        (
            "key: server.key",
            "key: ca.pem",
            "listeners[0].tls.key",
            "ca.pem",
        ),
        (
            "bind: 127.0.0.1:8443",
            "bind: localhost",
            "listeners[0].bind",
            "`localhost`",
        ),
        (
            "name: public",
            "name: Public!",
            "listeners[0].name",
            "`Public!`",
        ),
        (
            "path_prefix: /api/",
            "path_prefix: /api/../x",
            "routes[0].path_prefix",
            "plain segments",
        ),
        (
            "path_prefix: /api/",
            "path_prefix: /api;x",
            "routes[0].path_prefix",
            "plain segments",
        ),
        (
            "methods: [GET]",
            "methods: [get]",
            "routes[0].methods[0]",
            "`get`",
        ),
        (
            "url: http://127.0.0.1:9000",
            "url: ftp://127.0.0.1:9000",
            "routes[0].upstream.url",
            "`ftp`",
        ),
        (
            "url: http://127.0.0.1:9000",
            "url: http://127.0.0.1:9000/base",
            "routes[0].upstream.url",
            "path",
        ),
        (
            "url: http://127.0.0.1:9000",
            "url: https://127.0.0.1:9000",
            "routes[0].upstream.ca",
            "ca",
        ),
        (
            "request_timeout: 250ms",
            "request_timeout: 30",
            "routes[0].upstream.request_timeout",
            "unit",
        ),
        (
            "request_timeout: 250ms",
            "request_timeout: 0s",
            "routes[0].upstream.request_timeout",
            "greater than zero",
        ),
        (
            "spiffe_trust_domains: [example.org]",
            "spiffe_trust_domains: [Example.org]",
            "listeners[0].tls.spiffe_trust_domains[0]",
            "lowercase",
        ),
        (
            "file: policy.yaml",
            "file: nope.yaml",
            "policy.file",
            "nope.yaml",
        ),
    ];
    for (from, to, key, needle) in cases {
        let yaml = VALID.replace(from, to);
        assert_ne!(yaml, VALID, "{from}");
        let e = err(&f, &yaml);
        assert_eq!(e.key(), *key, "{to}: {e}");
        assert!(
            e.to_string().contains(needle),
            "{to}: `{e}` lacks `{needle}`"
        );
        assert!(
            e.to_string().contains("portcullis.yaml"),
            "{e} names the file"
        );
    }
}

#[test]
fn unknown_keys_are_refused_so_verification_cannot_be_disabled() {
    let f = Fixture::new();
    for (key, extra) in [
        ("listeners[0].tls", "      insecure_skip_verify: true\n"),
        ("listeners[0].tls", "      verify: false\n"),
        ("listeners[0].tls", "      client_auth_disabled: true\n"),
    ] {
        let yaml = VALID.replace(
            "      client_ca: ca.pem\n",
            &format!("      client_ca: ca.pem\n{extra}"),
        );
        let e = err(&f, &yaml);
        assert!(e.key().starts_with(key), "{e}");
        assert!(e.message().contains("unknown field"), "{e}");
    }
    let yaml = VALID.replace(
        "      client_ca: ca.pem\n",
        "      client_ca: ca.pem\n      client_auth: none\n",
    );
    let e = err(&f, &yaml);
    assert_eq!(e.key(), "listeners[0].tls.client_auth", "{e}");
    assert!(e.message().contains("unknown variant"), "{e}");
    let yaml = VALID.replace("      client_ca: ca.pem\n", "");
    assert!(
        err(&f, &yaml).message().contains("client_ca"),
        "client_ca is required"
    );
}

#[test]
fn structural_errors() {
    let f = Fixture::new();
    assert!(err(&f, "").message().contains("empty"));
    assert!(err(&f, "listeners: [")
        .to_string()
        .contains("portcullis.yaml"));
    let two = VALID.replace(
        "routes:\n",
        "routes:\n  - name: api\n    upstream: { url: \"http://127.0.0.1:1\" }\n",
    );
    assert!(err(&f, &two)
        .message()
        .contains("duplicate route name `api`"));
    let e = err(&f, &VALID.replace("    tls:\n", "    bind2: x\n    tls:\n"));
    assert!(e.message().contains("unknown field `bind2`"), "{e}");
}

#[test]
fn policy_must_only_name_configured_routes() {
    let f = Fixture::new();
    let c = f.load(VALID).unwrap();
    std::fs::write(
        f.dir.path().join("policy.yaml"),
        "revision: 2\nroles: { r: {} }\nrules:\n  - { id: a, effect: allow, roles: [r], route: apii, path: /** }\n",
    )
    .unwrap();
    let e = load_policy(&c.policy.path, &c.routes).unwrap_err();
    assert!(e.message().contains("`apii`"), "{e}");
    std::fs::write(
        f.dir.path().join("policy.yaml"),
        "revision: 2\nroles: { r: { inherits: [r] } }\n",
    )
    .unwrap();
    let e = load_policy(&c.policy.path, &c.routes).unwrap_err();
    assert!(e.to_string().contains("policy.yaml"), "{e}");
}

#[test]
fn a_rule_outside_its_routes_prefix_is_refused() {
    let f = Fixture::new();
    let c = f.load(VALID).unwrap();
    let route = &c.routes[0];
    assert_ne!(
        route.path_prefix, "/",
        "the fixture's first route has a prefix"
    );
    let write = |path: &str| {
        std::fs::write(
            f.dir.path().join("policy.yaml"),
            format!(
                "revision: 2\nroles: {{ r: {{}} }}\nrules:\n  - {{ id: a, effect: allow, roles: [r], route: {}, path: \"/**\" }}\n  - {{ id: no-internal, effect: deny, route: {}, path: \"{path}\" }}\n",
                route.name, route.name
            ),
        )
        .unwrap();
    };
    write("/internal/**");
    let e = load_policy(&c.policy.path, &c.routes).unwrap_err();
    assert!(
        e.message().contains("rule `no-internal`") && e.message().contains(&route.path_prefix),
        "{e}"
    );
    write(&format!("{}/internal/**", route.path_prefix));
    assert!(load_policy(&c.policy.path, &c.routes).is_ok());
}

#[test]
fn durations() {
    assert_eq!(
        parse_duration("250ms"),
        Ok(std::time::Duration::from_millis(250))
    );
    assert_eq!(
        parse_duration("2m"),
        Ok(std::time::Duration::from_secs(120))
    );
    assert_eq!(
        parse_duration("1h"),
        Ok(std::time::Duration::from_secs(3600))
    );
    for bad in ["", "10", "s", "1.5s", "-1s", "10 d", "1y"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn load_reads_from_disk_with_bounds() {
    let f = Fixture::new();
    std::fs::write(f.path(), VALID).unwrap();
    assert!(Config::load(&f.path()).is_ok());
    let e = Config::load(Path::new("/nonexistent/portcullis.yaml")).unwrap_err();
    assert!(e.message().contains("cannot read"), "{e}");
    std::fs::write(f.path(), "#".repeat(MAX_CONFIG_BYTES + 1)).unwrap();
    assert!(Config::load(&f.path())
        .unwrap_err()
        .message()
        .contains("larger than"));
    // A FIFO (or a symlink to one) is refused without being opened: the
    // open would wait for a writer forever.
    std::fs::remove_file(f.path()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(f.path())
        .status()
        .unwrap();
    assert!(status.success());
    let e = Config::load(&f.path()).unwrap_err();
    assert!(e.message().contains("not a regular file"), "{e}");
}

mod bearer {
    use super::*;

    fn with_bearer(issuers: &str) -> String {
        format!("{VALID}bearer:\n  issuers:\n{issuers}")
    }

    fn err(f: &Fixture, yaml: &str) -> String {
        match f.load(yaml) {
            Ok(_) => panic!("config should not load:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bindings_for_an_issuer_nobody_configures_are_reported() {
        let f = Fixture::new();
        std::fs::write(
            f.dir.path().join("policy.yaml"),
            "revision: 2\nroles: { r: {} }\nbindings:\n  - { role: r, issuer: \"https://idp.example\", subject: alice }\n  - { role: r, issuer: \"https://typo.example\", scope: read }\nrules:\n  - { id: a, effect: allow, roles: [r], route: api, path: \"/api/**\" }\n",
        )
        .unwrap();
        let warnings = |yaml: &str| {
            let c = f.load(yaml).unwrap();
            let p = load_policy(&c.policy.path, &c.routes).unwrap();
            policy_warnings(&c, &p.policy)
        };
        assert_eq!(
            warnings(VALID),
            [
                "bindings name the token issuer `https://idp.example`, which neither `bearer.issuers` nor `oidc` configures: they grant no role",
                "bindings name the token issuer `https://typo.example`, which neither `bearer.issuers` nor `oidc` configures: they grant no role",
            ]
        );
        let w = warnings(&with_bearer(
            "    - issuer: https://idp.example\n      audiences: [https://api.example]\n",
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`https://typo.example`"), "{w:?}");
    }

    #[test]
    fn issuer_with_discovery_and_defaults() {
        let f = Fixture::new();
        let c = f
            .load(&with_bearer(
                "    - issuer: https://idp.example\n      audiences: [https://api.example]\n",
            ))
            .unwrap();
        let b = c.bearer.unwrap();
        assert_eq!(b.cache_entries, DEFAULT_TOKEN_CACHE_ENTRIES);
        let i = &b.issuers[0];
        assert_eq!(i.keys, IssuerKeys::Discovery);
        assert_eq!(i.algorithms, portcullis_token::Alg::ALL.to_vec());
        assert_eq!(i.leeway, DEFAULT_TOKEN_LEEWAY);
        assert_eq!(i.min_refresh, DEFAULT_JWKS_MIN_REFRESH);
        assert!(i.ca.is_none(), "system roots by default");
    }

    #[test]
    fn jwks_uri_file_ca_and_timing() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("jwks.json"), "{\"keys\":[]}").unwrap();
        let c = f
            .load(&with_bearer(concat!(
                "    - issuer: https://a.example\n      audiences: [x]\n      jwks_uri: https://a.example/keys\n      ca: ca.pem\n",
                "      algorithms: [ES256, EdDSA]\n      leeway: 10s\n      typ: [at+jwt]\n      required_claims: [sub]\n",
                "      jwks: { min_refresh: 2s, max_refresh: 1h, default_refresh: 10m, unknown_kid_interval: 5s, max_staleness: 2h, fetch_timeout: 3s, max_bytes: 65536 }\n",
                "    - issuer: local\n      audiences: [y]\n      jwks_file: jwks.json\n",
            )))
            .unwrap();
        let b = c.bearer.unwrap();
        let a = &b.issuers[0];
        assert!(matches!(&a.keys, IssuerKeys::JwksUri(u) if u.path() == "/keys"));
        assert_eq!(a.ca.as_ref().unwrap().len(), 1);
        assert_eq!(a.algorithms.len(), 2);
        assert_eq!(a.default_refresh, std::time::Duration::from_secs(600));
        assert_eq!(a.max_jwks_bytes, 65536);
        assert!(matches!(&b.issuers[1].keys, IssuerKeys::JwksFile(p) if p.ends_with("jwks.json")));
    }

    #[test]
    fn empty_issuer_or_audience_refused() {
        let f = Fixture::new();
        let e = err(
            &f,
            &with_bearer("    - issuer: \"\"\n      audiences: [x]\n"),
        );
        assert!(
            e.contains("bearer.issuers[0].issuer: must not be empty"),
            "{e}"
        );
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: []\n"),
        );
        assert!(
            e.contains("bearer.issuers[0].audiences: must name at least one audience"),
            "{e}"
        );
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: [\"\"]\n"),
        );
        assert!(e.contains("bearer.issuers[0].audiences[0]"), "{e}");
        let e = err(&f, &with_bearer("    - issuer: https://a.example\n"));
        assert!(e.contains("audiences"), "{e}");
        let e = err(&f, &format!("{VALID}bearer:\n  issuers: []\n"));
        assert!(e.contains("bearer.issuers: at least one issuer"), "{e}");
    }

    #[test]
    fn insecure_choices_cannot_be_expressed() {
        let f = Fixture::new();
        for (alg, _) in [("none", 0), ("HS256", 0), ("hs256", 0), ("ES512", 0)] {
            let e = err(
                &f,
                &with_bearer(&format!(
                    "    - issuer: https://a.example\n      audiences: [x]\n      algorithms: [{alg}]\n"
                )),
            );
            assert!(
                e.contains("algorithms[0]") && e.contains("never `none` or HMAC"),
                "{e}"
            );
        }
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: [x]\n      jwks_uri: http://a.example/keys\n"),
        );
        assert!(e.contains("jwks_uri") && e.contains("https://"), "{e}");
        let e = err(
            &f,
            &with_bearer("    - issuer: http://a.example\n      audiences: [x]\n"),
        );
        assert!(e.contains("issuer") && e.contains("https://"), "{e}");
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: [x]\n      verify_signature: false\n"),
        );
        assert!(e.contains("unknown field `verify_signature`"), "{e}");
        let e = err(
            &f,
            &with_bearer(
                "    - issuer: https://a.example\n      audiences: [x]\n      leeway: 1h\n",
            ),
        );
        assert!(e.contains("leeway: must be at most 5m"), "{e}");
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: [x]\n      jwks: { unknown_kid_interval: 10ms }\n"),
        );
        assert!(
            e.contains("unknown_kid_interval: must be at least 1s"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_issuer_and_missing_file_refused() {
        let f = Fixture::new();
        let e = err(
            &f,
            &with_bearer("    - issuer: https://a.example\n      audiences: [x]\n    - issuer: https://a.example\n      audiences: [y]\n"),
        );
        assert!(
            e.contains("bearer.issuers[1].issuer: issuer `https://a.example` is configured twice"),
            "{e}"
        );
        let e = err(
            &f,
            &with_bearer("    - issuer: local\n      audiences: [x]\n      jwks_file: nope.json\n"),
        );
        assert!(
            e.contains("jwks_file: file") && e.contains("does not exist"),
            "{e}"
        );
        let e = err(
            &f,
            &with_bearer(
                "    - issuer: https://a.example\n      audiences: [x]\n      ca: empty.pem\n",
            ),
        );
        assert!(e.contains("bearer.issuers[0].ca"), "{e}");
    }
}

mod sessions_and_bundles {
    use super::*;

    fn err(f: &Fixture, yaml: &str) -> String {
        match f.load(yaml) {
            Ok(_) => panic!("config should not load:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    fn with_login(f: &Fixture, oidc_extra: &str, sessions_extra: &str) -> String {
        std::fs::write(f.dir.path().join("secret"), "s3cret\n").unwrap();
        std::fs::write(f.dir.path().join("k1.key"), "00".repeat(32)).unwrap();
        format!(
            "{VALID}oidc:\n  issuer: https://id.example\n  client_id: web\n  client_secret_file: secret\n  redirect_uri: https://gw.example/.portcullis/callback\n{oidc_extra}sessions:\n  refresh_token_keys:\n    - {{ id: k1, file: k1.key }}\n{sessions_extra}"
        )
    }

    #[test]
    fn login_and_sessions_load_with_secure_defaults() {
        let f = Fixture::new();
        let c = f.load(&with_login(&f, "", "")).unwrap();
        let o = c.oidc.unwrap();
        assert_eq!(
            o.client_secret.0.as_str(),
            "s3cret",
            "trailing newline removed"
        );
        assert!(!format!("{o:?}").contains("s3cret"), "secrets are redacted");
        assert_eq!(o.auth_method, ClientAuth::ClientSecretBasic);
        let s = c.sessions.unwrap();
        assert_eq!(s.cookie_name, DEFAULT_SESSION_COOKIE);
        assert!(matches!(s.store, SessionStoreConfig::Embedded { .. }));
        assert_eq!(s.idle_timeout, DEFAULT_SESSION_IDLE_TIMEOUT);
    }

    #[test]
    fn insecure_or_incomplete_login_settings_are_refused() {
        let f = Fixture::new();
        let base = with_login(&f, "", "");
        let e = err(&f, &base.replace("client_id: web", "client_id: \"\""));
        assert!(e.contains("oidc.client_id: must not be empty"), "{e}");
        let e = err(
            &f,
            &base.replace("issuer: https://id.example", "issuer: http://id.example"),
        );
        assert!(e.contains("oidc.issuer"), "{e}");
        let e = err(&f, &with_login(&f, "", "  cookie_name: session\n"));
        assert!(
            e.contains("sessions.cookie_name") && e.contains("__Host-"),
            "{e}"
        );
        let e = err(&f, &with_login(&f, "  scopes: [email]\n", ""));
        assert!(e.contains("must include `openid`"), "{e}");
        let e = err(
            &f,
            &with_login(&f, "", "  idle_timeout: 2h\n  absolute_timeout: 1h\n"),
        );
        assert!(e.contains("sessions.idle_timeout"), "{e}");
        std::fs::write(f.dir.path().join("short.key"), "abcd").unwrap();
        let e = err(&f, &base.replace("file: k1.key", "file: short.key"));
        assert!(e.contains("32-byte key"), "{e}");
        let only_oidc = base.split("sessions:").next().unwrap().to_owned();
        let e = err(&f, &only_oidc);
        assert!(e.contains("`oidc` needs `sessions`"), "{e}");
        let e = err(
            &f,
            &with_login(
                &f,
                "",
                "  store:\n    redis: { url: http://127.0.0.1:6379 }\n",
            ),
        );
        assert!(e.contains("redis:// or rediss://"), "{e}");
    }

    #[test]
    fn admin_token_must_be_long() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("tok"), "short").unwrap();
        let e = err(
            &f,
            &format!("{VALID}admin:\n  bind: 127.0.0.1:9999\n  token_file: tok\n"),
        );
        assert!(e.contains("at least 32 characters"), "{e}");
    }

    #[test]
    fn bundle_policy_settings() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("root.json"), "{}").unwrap();
        let bundled = VALID.replace(
            "policy:\n  file: policy.yaml\n",
            "policy:\n  bundle:\n    url: https://bundles.example/p.tar\n    trust_root: root.json\n    poll_interval: 10s\n    max_age: 1h\n",
        );
        let c = f.load(&bundled).unwrap();
        let b = c.policy.bundle.unwrap();
        assert!(matches!(b.location, BundleLocation::Url(_)));
        assert!(
            c.policy.path.ends_with("active-bundle.tar")
                || c.policy.path.ends_with("active-policy.yaml")
        );
        let e = err(&f, &bundled.replace("https://bundles", "http://bundles"));
        assert!(e.contains("policy.bundle.url"), "{e}");
        let e = err(&f, &bundled.replace("max_age: 1h", "max_age: 5s"));
        assert!(e.contains("policy.bundle.max_age"), "{e}");
        let e = err(
            &f,
            &bundled.replace("policy:\n", "policy:\n  file: policy.yaml\n"),
        );
        assert!(e.contains("not both"), "{e}");
        let e = err(
            &f,
            &bundled.replace("trust_root: root.json", "trust_root: nope.json"),
        );
        assert!(e.contains("policy.bundle.trust_root"), "{e}");
    }
}

#[test]
fn a_rule_whose_requests_another_route_takes_is_refused() {
    let f = Fixture::new();
    let routes = "routes:\n  - name: api\n    path_prefix: /api\n    upstream: { url: \"http://127.0.0.1:9000\" }\n  - name: api-admin\n    path_prefix: /api/admin\n    upstream: { url: \"http://127.0.0.1:9001\" }\n  - name: api-write\n    path_prefix: /api\n    methods: [POST, PUT]\n    upstream: { url: \"http://127.0.0.1:9002\" }\n  - name: other-host\n    host: other.example\n    path_prefix: /api/internal\n    upstream: { url: \"http://127.0.0.1:9003\" }\n";
    let config = VALID.replace(
        "routes:\n  - name: api\n    path_prefix: /api/\n    methods: [GET]\n    upstream:\n      url: http://127.0.0.1:9000\n      request_timeout: 250ms\n",
        routes,
    );
    assert_ne!(config, VALID, "the fixture's routes were replaced");
    let c = f.load(&config).unwrap();
    let check = |rule: &str| {
        std::fs::write(
            f.dir.path().join("policy.yaml"),
            format!("revision: 2\nroles: {{ r: {{}} }}\nrules:\n  - {{ id: a, effect: allow, roles: [r], route: api, path: \"/api/**\" }}\n  - {rule}\n"),
        )
        .unwrap();
        load_policy(&c.policy.path, &c.routes)
    };
    // Every request under /api/admin goes to `api-admin`.
    let e =
        check("{ id: no-admin, effect: deny, route: api, path: \"/api/admin/**\" }").unwrap_err();
    assert!(
        e.message()
            .contains("rule `no-admin` can never match on route `api`")
            && e.message()
                .contains("route `api-admin` (path prefix `/api/admin`)"),
        "{e}"
    );
    let e =
        check("{ id: no-admin-root, effect: deny, route: api, path: \"/api/admin\" }").unwrap_err();
    assert!(e.message().contains("rule `no-admin-root`"), "{e}");
    // Named on the route that takes them: fine.
    assert!(
        check("{ id: no-admin, effect: deny, route: api-admin, path: \"/api/admin/**\" }").is_ok()
    );
    // Next to a route that does not see them: the rule is live.
    assert!(check(
        "{ id: no-admin, effect: deny, routes: [api, api-admin], path: \"/api/admin/**\" }"
    )
    .is_ok());
    // Seen by none of the routes it names: dead.
    let e = check("{ id: no-admin-w, effect: deny, routes: [api, api-write], methods: [POST], path: \"/api/admin/**\" }").unwrap_err();
    assert!(
        e.message().contains("rule `no-admin-w`")
            && e.message().ends_with("(and so on every route it names)"),
        "{e}"
    );
    // Paths that may fall outside /api/admin still reach `api`.
    for path in [
        "/api/**",
        "/api/{x}/users",
        "/api/*/users",
        "/api/administrators",
    ] {
        assert!(
            check(&format!(
                "{{ id: wide, effect: deny, route: api, path: \"{path}\" }}"
            ))
            .is_ok(),
            "{path}"
        );
    }
    // POST and PUT under /api go to `api-write`.
    let e = check("{ id: no-post, effect: deny, route: api, methods: [POST], path: \"/api/**\" }")
        .unwrap_err();
    assert!(
        e.message().contains("rule `no-post`") && e.message().contains("methods POST, PUT"),
        "{e}"
    );
    assert!(check(
        "{ id: no-delete, effect: deny, route: api, methods: [POST, DELETE], path: \"/api/**\" }"
    )
    .is_ok());
    assert!(check("{ id: any-method, effect: deny, route: api, path: \"/api/x\" }").is_ok());
    // A route for another host takes none of this host's requests.
    assert!(
        check("{ id: internal, effect: deny, route: api, path: \"/api/internal/**\" }").is_ok()
    );
}

#[test]
fn client_headers_list_what_the_gateway_would_forward_and_nothing_else() {
    let f = Fixture::new();
    let with = |list: &str| {
        VALID.replacen(
            "    path_prefix: /api/\n",
            &format!("    path_prefix: /api/\n    client_headers: {list}\n"),
            1,
        )
    };
    assert_ne!(with("[]"), VALID);
    let c = f.load(VALID).unwrap();
    assert_eq!(c.routes[0].client_headers, None, "every header by default");
    let c = f.load(&with("[X-App-Version, accept, Accept]")).unwrap();
    let names: Vec<&str> = c.routes[0]
        .client_headers
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(
        names,
        ["accept", "x-app-version"],
        "lowercase, sorted, once"
    );
    for (name, why) in [
        ("x-forwarded-user", "spoofable identity header"),
        ("X_Forwarded_User", "spoofable identity header"),
        ("x-portcullis-identity", "its own namespace"),
        ("connection", "hop-by-hop"),
        ("transfer-encoding", "hop-by-hop"),
        ("transfer_encoding", "hop-by-hop"),
        ("Keep_Alive", "hop-by-hop"),
        ("content_length", "always forwarded"),
        ("host", "always sends the client's host"),
        ("content-length", "always forwarded"),
    ] {
        let e = f.load(&with(&format!("[accept, {name}]"))).unwrap_err();
        assert_eq!(e.key(), "routes[0].client_headers[1]", "{e}");
        assert!(e.message().contains(why), "{name}: {e}");
    }
    let e = f.load(&with("[\"bad name\"]")).unwrap_err();
    assert!(e.message().contains("is not a header name"), "{e}");
}

#[test]
fn a_configuration_nested_too_deep_is_refused_with_its_line() {
    let f = Fixture::new();
    let deep = format!(
        "{VALID}extra: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = f.load(&deep).unwrap_err();
    assert!(
        e.message()
            .contains("flow collections (`[`, `{`) nested more than 256 levels deep at line"),
        "{e}"
    );
}
