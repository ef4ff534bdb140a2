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
}
