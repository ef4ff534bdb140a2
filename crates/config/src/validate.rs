//! Raw structs -> typed [`Config`]: every check happens here, once, at load.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_authn::{ClientAuthConfig, ClientAuthMode};
use portcullis_identity::TrustDomain;
use portcullis_policy::Policy;

use crate::raw::{self, RawClientAuth, RawConfig};
use crate::{
    parse_duration, read_bounded, Admin, Assertion, Audit, AuditDest, Bearer, BundleLocation,
    BundleSource, ClientAuth, Config, ConfigError, Issuer, IssuerKeys, Limits, Listener,
    ListenerTls, Oidc, PolicySource, Route, Secret, SessionStoreConfig, Sessions, Upstream,
};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_FILE_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(path, "", "file is empty"));
    }
    if let Some(deep) = portcullis_policy::too_deep_flow_nesting(text) {
        return Err(ConfigError::new(path, "", deep.to_string()));
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        ConfigError::new(path, key, e.into_inner().to_string())
    })
}

struct Ctx<'a> {
    file: &'a Path,
    dir: PathBuf,
    /// Every certificate, key and CRL file read, in order.
    inputs: std::cell::RefCell<Vec<PathBuf>>,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, key, msg)
    }

    /// Resolves a file this configuration reads as trust or key material
    /// and remembers it, so the gateway can watch it for changes.
    fn input(&self, p: &str) -> PathBuf {
        let path = self.resolve(p);
        self.inputs.borrow_mut().push(path.clone());
        path
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }

    fn duration(
        &self,
        key: &str,
        v: Option<&String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => {
                let d = parse_duration(s).map_err(|m| self.err(key, m))?;
                if d.is_zero() {
                    return Err(self.err(key, "must be greater than zero"));
                }
                Ok(d)
            }
        }
    }
}

pub(crate) fn validate(file: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let dir = file
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let cx = Ctx {
        file,
        dir,
        inputs: std::cell::RefCell::new(Vec::new()),
    };

    if raw.listeners.is_empty() {
        return Err(cx.err("listeners", "at least one listener is required"));
    }
    let mut listeners = Vec::with_capacity(raw.listeners.len());
    let mut names = HashSet::new();
    let mut binds = HashSet::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let key = format!("listeners[{i}]");
        let listener = listener(&cx, &key, l)?;
        if !names.insert(listener.name.clone()) {
            return Err(cx.err(
                format!("{key}.name"),
                format!("duplicate listener name `{}`", listener.name),
            ));
        }
        if listener.bind.port() != 0 && !binds.insert(listener.bind) {
            return Err(cx.err(
                format!("{key}.bind"),
                format!("address `{}` is used by another listener", listener.bind),
            ));
        }
        listeners.push(listener);
    }

    if raw.routes.is_empty() {
        return Err(cx.err("routes", "at least one route is required"));
    }
    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut route_names = HashSet::new();
    let mut route_keys = HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let route = route(&cx, &key, r)?;
        if !route_names.insert(route.name.clone()) {
            return Err(cx.err(
                format!("{key}.name"),
                format!("duplicate route name `{}`", route.name),
            ));
        }
        let mut methods: Vec<String> = route.methods.iter().map(ToString::to_string).collect();
        methods.sort();
        if !route_keys.insert((route.host.clone(), route.path_prefix.clone(), methods)) {
            return Err(cx.err(
                key,
                format!(
                    "route `{}` matches exactly the same requests as an earlier route",
                    route.name
                ),
            ));
        }
        routes.push(route);
    }

    let bundle =
        match (&raw.policy.file, &raw.policy.bundle) {
            (Some(_), Some(_)) => return Err(cx.err(
                "policy",
                "give `file` or `bundle`, not both: with bundles only signed policies are loaded",
            )),
            (None, None) => return Err(cx.err("policy", "give `file` or `bundle`")),
            (Some(_), None) => None,
            (None, Some(b)) => Some(bundle_source(&cx, b)?),
        };
    let policy = PolicySource {
        path: match (&raw.policy.file, &bundle) {
            (Some(f), _) => cx.resolve(f),
            (None, Some(b)) => b.state_dir.join("active-bundle.tar"),
            (None, None) => PathBuf::new(),
        },
        watch: raw.policy.watch.unwrap_or(true),
        poll_interval: cx.duration(
            "policy.poll_interval",
            raw.policy.poll_interval.as_ref(),
            crate::DEFAULT_POLICY_POLL_INTERVAL,
        )?,
        bundle,
    };
    // With bundles the installed policy appears once one verifies.
    if policy.bundle.is_none() && !policy.path.is_file() {
        return Err(cx.err(
            "policy.file",
            format!("file `{}` does not exist", policy.path.display()),
        ));
    }

    let admin = match &raw.admin {
        Some(a) => Some(Admin {
            bind: socket_addr(&cx, "admin.bind", &a.bind)?,
            token: match &a.token_file {
                None => None,
                Some(f) => {
                    let t = secret_file(&cx, "admin.token_file", f)?;
                    if t.0.len() < 32 {
                        return Err(cx.err(
                            "admin.token_file",
                            "the admin token must be at least 32 characters",
                        ));
                    }
                    Some(t)
                }
            },
        }),
        None => Some(Admin {
            bind: socket_addr(&cx, "admin.bind", crate::DEFAULT_ADMIN_BIND)?,
            token: None,
        }),
    };
    if let Some(a) = &admin {
        if a.bind.port() != 0 && binds.contains(&a.bind) {
            return Err(cx.err(
                "admin.bind",
                format!("address `{}` is used by a listener", a.bind),
            ));
        }
    }

    let assertion = assertion(&cx, raw.identity_assertion.as_ref())?;
    let via = via(&cx, raw.via.as_ref())?;
    let audit = match &raw.audit {
        None => Audit {
            dest: AuditDest::Stdout,
            queue_capacity: crate::DEFAULT_AUDIT_QUEUE_CAPACITY,
            deny_wait: crate::DEFAULT_AUDIT_DENY_WAIT,
        },
        Some(a) => {
            let dest = match a.dest.as_str() {
                "stdout" | "-" => AuditDest::Stdout,
                "" => return Err(cx.err("audit.dest", "must be `stdout` or a file path")),
                p => AuditDest::File(cx.resolve(p)),
            };
            let queue_capacity = a
                .queue_capacity
                .unwrap_or(crate::DEFAULT_AUDIT_QUEUE_CAPACITY);
            if queue_capacity == 0 || queue_capacity > crate::MAX_AUDIT_QUEUE_CAPACITY {
                return Err(cx.err(
                    "audit.queue_capacity",
                    format!("must be between 1 and {}", crate::MAX_AUDIT_QUEUE_CAPACITY),
                ));
            }
            let deny_wait = cx.duration(
                "audit.deny_wait",
                a.deny_wait.as_ref(),
                crate::DEFAULT_AUDIT_DENY_WAIT,
            )?;
            if deny_wait > crate::MAX_AUDIT_DENY_WAIT {
                return Err(cx.err(
                    "audit.deny_wait",
                    "must be at most 10s: a denied request is never held longer for the audit log",
                ));
            }
            Audit {
                dest,
                queue_capacity,
                deny_wait,
            }
        }
    };
    let drain_timeout = cx.duration(
        "shutdown.drain_timeout",
        raw.shutdown.as_ref().and_then(|s| s.drain_timeout.as_ref()),
        crate::DEFAULT_DRAIN_TIMEOUT,
    )?;

    let bearer = match &raw.bearer {
        None => None,
        Some(b) => Some(bearer(&cx, b)?),
    };
    let (oidc, sessions) = match (&raw.oidc, &raw.sessions) {
        (None, None) => (None, None),
        (Some(o), Some(s)) => (Some(oidc(&cx, o)?), Some(sessions(&cx, s)?)),
        (Some(_), None) => {
            return Err(cx.err(
                "sessions",
                "`oidc` needs `sessions` (where logins are kept and how long)",
            ))
        }
        (None, Some(_)) => {
            return Err(cx.err("oidc", "`sessions` needs `oidc` (where browsers log in)"))
        }
    };
    if oidc.is_none() {
        if let Some(r) = routes.iter().find(|r| r.browser_login) {
            return Err(cx.err(
                "routes",
                format!(
                    "route `{}` has `browser_login: true` but no `oidc` is configured",
                    r.name
                ),
            ));
        }
    }

    let inputs = cx.inputs.take();
    Ok(Config {
        source: file.to_owned(),
        inputs,
        listeners,
        routes,
        policy,
        admin,
        assertion,
        via,
        audit,
        drain_timeout,
        bearer,
        oidc,
        sessions,
    })
}

/// Reads a secret from a file (trailing newline removed); never echoes it.
fn bundle_source(cx: &Ctx<'_>, b: &raw::RawBundle) -> Result<BundleSource, ConfigError> {
    let location = match (&b.file, &b.dir, &b.url) {
        (Some(f), None, None) => BundleLocation::File(cx.resolve(f)),
        (None, Some(d), None) => BundleLocation::Dir(cx.resolve(d)),
        (None, None, Some(u)) => BundleLocation::Url(https_url(cx, "policy.bundle.url", u)?),
        _ => {
            return Err(cx.err(
                "policy.bundle",
                "give exactly one of `file`, `dir` or `url`",
            ))
        }
    };
    let trust_root = cx.input(&b.trust_root);
    if !trust_root.is_file() {
        return Err(cx.err(
            "policy.bundle.trust_root",
            format!("file `{}` does not exist", trust_root.display()),
        ));
    }
    let state_dir = cx.resolve(b.state_dir.as_deref().unwrap_or("bundle-state"));
    let poll_interval = cx.duration(
        "policy.bundle.poll_interval",
        b.poll_interval.as_ref(),
        crate::DEFAULT_BUNDLE_POLL_INTERVAL,
    )?;
    let max_age = cx.duration(
        "policy.bundle.max_age",
        b.max_age.as_ref(),
        crate::DEFAULT_BUNDLE_MAX_AGE,
    )?;
    if max_age <= poll_interval {
        return Err(cx.err(
            "policy.bundle.max_age",
            "must be longer than `poll_interval`, or every poll would come too late",
        ));
    }
    let ca = ca_bundle(cx, "policy.bundle.ca", b.ca.as_deref())?;
    let max_bytes = b.max_bytes.unwrap_or(crate::DEFAULT_BUNDLE_MAX_BYTES);
    if max_bytes == 0 || max_bytes > crate::DEFAULT_BUNDLE_MAX_BYTES * 4 {
        return Err(cx.err("policy.bundle.max_bytes", "must be between 1 and 256 MiB"));
    }
    Ok(BundleSource {
        location,
        trust_root,
        state_dir,
        poll_interval,
        max_age,
        ca,
        max_bytes,
    })
}

/// An optional CA bundle file (`None` = the system store), remembered as an
/// input so a change triggers a reload.
fn ca_bundle(
    cx: &Ctx<'_>,
    key: impl Into<String>,
    file: Option<&str>,
) -> Result<Option<Vec<rustls_pki_types::CertificateDer<'static>>>, ConfigError> {
    match file {
        None => Ok(None),
        Some(p) => {
            let path = cx.input(p);
            portcullis_authn::pem::load_certs(&path)
                .map(Some)
                .map_err(|e| cx.err(key, e.to_string()))
        }
    }
}

fn secret_file(cx: &Ctx<'_>, key: &str, f: &str) -> Result<Secret, ConfigError> {
    let path = cx.input(f);
    let text = zeroize::Zeroizing::new(
        read_bounded(&path, crate::MAX_SECRET_FILE_BYTES).map_err(|e| cx.err(key, e))?,
    );
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(cx.err(key, format!("file `{}` is empty", path.display())));
    }
    Ok(Secret(zeroize::Zeroizing::new(trimmed.to_owned())))
}

fn secret_env(cx: &Ctx<'_>, key: &str, var: &str) -> Result<Secret, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Secret(zeroize::Zeroizing::new(v))),
        _ => Err(cx.err(
            key,
            format!("environment variable `{var}` is not set or empty"),
        )),
    }
}

fn oidc(cx: &Ctx<'_>, o: &raw::RawOidc) -> Result<Oidc, ConfigError> {
    if o.issuer.trim().is_empty() {
        return Err(cx.err("oidc.issuer", "must not be empty"));
    }
    https_url(cx, "oidc.issuer", &o.issuer)?;
    if o.client_id.trim().is_empty() {
        return Err(cx.err("oidc.client_id", "must not be empty"));
    }
    let client_secret = match (&o.client_secret_file, &o.client_secret_env) {
        (Some(f), None) => secret_file(cx, "oidc.client_secret_file", f)?,
        (None, Some(v)) => secret_env(cx, "oidc.client_secret_env", v)?,
        _ => {
            return Err(cx.err(
                "oidc",
                "give exactly one of `client_secret_file` or `client_secret_env`",
            ))
        }
    };
    let auth_method = match o.auth_method.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
        Some("client_secret_post") => ClientAuth::ClientSecretPost,
        Some(other) => {
            return Err(cx.err(
                "oidc.auth_method",
                format!(
                    "`{other}` is not supported: use client_secret_basic or client_secret_post"
                ),
            ))
        }
    };
    let redirect_uri = https_url(cx, "oidc.redirect_uri", &o.redirect_uri).map_err(|_| {
        cx.err(
            "oidc.redirect_uri",
            format!(
                "`{}` must be an https:// URL on this gateway",
                o.redirect_uri
            ),
        )
    })?;
    let post_logout_redirect_uri = match &o.post_logout_redirect_uri {
        None => None,
        Some(u) => Some(https_url(cx, "oidc.post_logout_redirect_uri", u)?),
    };
    let scopes = o.scopes.clone().unwrap_or_else(|| {
        vec![
            "openid".to_owned(),
            "email".to_owned(),
            "profile".to_owned(),
        ]
    });
    if !scopes.iter().any(|s| s == "openid") {
        return Err(cx.err("oidc.scopes", "must include `openid`"));
    }
    let ca = ca_bundle(cx, "oidc.ca", o.ca.as_deref())?;
    let algorithms = match &o.algorithms {
        None => portcullis_token::Alg::ALL.to_vec(),
        Some(list) if list.is_empty() => return Err(cx.err("oidc.algorithms", "must not be empty")),
        Some(list) => {
            let mut out = Vec::new();
            for (j, name) in list.iter().enumerate() {
                out.push(portcullis_token::Alg::from_name(name).ok_or_else(|| {
                    cx.err(
                        format!("oidc.algorithms[{j}]"),
                        format!("`{name}` is not accepted (never `none` or HMAC)"),
                    )
                })?);
            }
            out
        }
    };
    let leeway = match &o.leeway {
        None => crate::DEFAULT_TOKEN_LEEWAY,
        Some(s) => parse_duration(s).map_err(|m| cx.err("oidc.leeway", m))?,
    };
    if leeway > crate::MAX_TOKEN_LEEWAY {
        return Err(cx.err("oidc.leeway", "must be at most 5m"));
    }
    Ok(Oidc {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret,
        auth_method,
        redirect_uri,
        post_logout_redirect_uri,
        scopes,
        ca,
        algorithms,
        leeway,
    })
}

fn sessions(cx: &Ctx<'_>, s: &raw::RawSessions) -> Result<Sessions, ConfigError> {
    let store = match &s.store {
        None => SessionStoreConfig::Embedded {
            path: cx.resolve("sessions.redb"),
        },
        Some(st) => match (&st.embedded, &st.redis) {
            (Some(e), None) => SessionStoreConfig::Embedded {
                path: cx.resolve(&e.path),
            },
            (None, Some(r)) => {
                if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
                    return Err(cx.err(
                        "sessions.store.redis.url",
                        "must start with redis:// or rediss://",
                    ));
                }
                let password = match (&r.password_file, &r.password_env) {
                    (None, None) => None,
                    (Some(f), None) => {
                        Some(secret_file(cx, "sessions.store.redis.password_file", f)?)
                    }
                    (None, Some(v)) => {
                        Some(secret_env(cx, "sessions.store.redis.password_env", v)?)
                    }
                    _ => {
                        return Err(cx.err(
                            "sessions.store.redis",
                            "give at most one of `password_file` or `password_env`",
                        ))
                    }
                };
                let ca = ca_bundle(cx, "sessions.store.redis.ca", r.ca.as_deref())?;
                let timeout = cx.duration(
                    "sessions.store.redis.timeout",
                    r.timeout.as_ref(),
                    crate::DEFAULT_REDIS_TIMEOUT,
                )?;
                if timeout > crate::MAX_REDIS_TIMEOUT {
                    return Err(cx.err("sessions.store.redis.timeout", "must be at most 10s"));
                }
                SessionStoreConfig::Redis {
                    url: r.url.clone(),
                    username: r.username.clone(),
                    password,
                    ca,
                    timeout,
                    key_prefix: r
                        .key_prefix
                        .clone()
                        .unwrap_or_else(|| "portcullis:".to_owned()),
                }
            }
            _ => {
                return Err(cx.err(
                    "sessions.store",
                    "give exactly one of `embedded` or `redis`",
                ))
            }
        },
    };
    let cookie_name = s
        .cookie_name
        .clone()
        .unwrap_or_else(|| crate::DEFAULT_SESSION_COOKIE.to_owned());
    if !cookie_name.starts_with("__Host-")
        || cookie_name.len() <= "__Host-".len()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(cx.err(
            "sessions.cookie_name",
            "must start with `__Host-` (bound to this host, Secure, path /) and hold only letters, digits, `-` and `_`",
        ));
    }
    let idle_timeout = cx.duration(
        "sessions.idle_timeout",
        s.idle_timeout.as_ref(),
        crate::DEFAULT_SESSION_IDLE_TIMEOUT,
    )?;
    let absolute_timeout = cx.duration(
        "sessions.absolute_timeout",
        s.absolute_timeout.as_ref(),
        crate::DEFAULT_SESSION_ABSOLUTE_TIMEOUT,
    )?;
    if absolute_timeout > crate::MAX_SESSION_ABSOLUTE_TIMEOUT {
        return Err(cx.err("sessions.absolute_timeout", "must be at most 30d"));
    }
    if idle_timeout > absolute_timeout {
        return Err(cx.err(
            "sessions.idle_timeout",
            "must not be longer than `absolute_timeout`",
        ));
    }
    let provider_refresh_interval = cx.duration(
        "sessions.provider_refresh_interval",
        s.provider_refresh_interval.as_ref(),
        crate::DEFAULT_PROVIDER_REFRESH_INTERVAL,
    )?;
    if provider_refresh_interval < std::time::Duration::from_secs(1) {
        return Err(cx.err("sessions.provider_refresh_interval", "must be at least 1s"));
    }
    if s.refresh_token_keys.is_empty() {
        return Err(cx.err(
            "sessions.refresh_token_keys",
            "at least one key is required: refresh tokens are stored encrypted",
        ));
    }
    let mut keys: Vec<(String, Secret)> = Vec::new();
    for (i, k) in s.refresh_token_keys.iter().enumerate() {
        let key = format!("sessions.refresh_token_keys[{i}]");
        if k.id.is_empty() || keys.iter().any(|(id, _)| *id == k.id) {
            return Err(cx.err(format!("{key}.id"), "must be non-empty and unique"));
        }
        let text = secret_file(cx, &format!("{key}.file"), &k.file)?;
        // 32 random bytes, as 64 hex digits or base64.
        let bytes = decode_key(&text.0).ok_or_else(|| {
            cx.err(
                format!("{key}.file"),
                "must hold a 32-byte key as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)",
            )
        })?;
        keys.push((k.id.clone(), bytes));
    }
    Ok(Sessions {
        store,
        cookie_name,
        idle_timeout,
        absolute_timeout,
        provider_refresh_interval,
        refresh_token_keys: keys,
    })
}

/// A 32-byte key from hex or base64 text, returned as raw bytes held in
/// a [`Secret`] (as a byte string of `char`s is not used: the bytes are
/// kept hex-encoded for transport and decoded by the gateway).
fn decode_key(text: &str) -> Option<Secret> {
    let t = text.trim();
    let hex_ok = t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
    if hex_ok {
        return Some(Secret(zeroize::Zeroizing::new(t.to_ascii_lowercase())));
    }
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let raw = zeroize::Zeroizing::new(raw);
    if raw.len() != 32 {
        return None;
    }
    let mut hex = String::with_capacity(64);
    for b in raw.iter() {
        hex.push(char::from_digit(u32::from(b >> 4), 16)?);
        hex.push(char::from_digit(u32::from(b & 0xf), 16)?);
    }
    Some(Secret(zeroize::Zeroizing::new(hex)))
}

fn bearer(cx: &Ctx<'_>, b: &raw::RawBearer) -> Result<Bearer, ConfigError> {
    if b.issuers.is_empty() {
        return Err(cx.err(
            "bearer.issuers",
            "at least one issuer is required (remove `bearer` to accept no tokens)",
        ));
    }
    let cache_entries = b
        .cache_entries
        .unwrap_or(crate::DEFAULT_TOKEN_CACHE_ENTRIES);
    if cache_entries == 0 || cache_entries > crate::MAX_TOKEN_CACHE_ENTRIES {
        return Err(cx.err(
            "bearer.cache_entries",
            format!("must be between 1 and {}", crate::MAX_TOKEN_CACHE_ENTRIES),
        ));
    }
    let mut issuers: Vec<Issuer> = Vec::with_capacity(b.issuers.len());
    for (i, raw) in b.issuers.iter().enumerate() {
        let key = format!("bearer.issuers[{i}]");
        let iss = issuer(cx, &key, raw)?;
        if issuers.iter().any(|o| o.issuer == iss.issuer) {
            return Err(cx.err(
                format!("{key}.issuer"),
                format!("issuer `{}` is configured twice", iss.issuer),
            ));
        }
        issuers.push(iss);
    }
    Ok(Bearer {
        issuers,
        cache_entries,
    })
}

fn https_url(cx: &Ctx<'_>, key: &str, s: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| cx.err(key, format!("`{s}` is not a URL")))?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTPS) || uri.authority().is_none() {
        return Err(cx.err(
            key,
            format!("`{s}` must be an https:// URL: keys are never fetched in the clear"),
        ));
    }
    Ok(uri)
}

fn issuer(cx: &Ctx<'_>, key: &str, r: &raw::RawIssuer) -> Result<Issuer, ConfigError> {
    if r.issuer.trim().is_empty() {
        return Err(cx.err(
            format!("{key}.issuer"),
            "must not be empty: tokens are only accepted from a named issuer",
        ));
    }
    if r.audiences.is_empty() {
        return Err(cx.err(
            format!("{key}.audiences"),
            "must name at least one audience: a token for another service must not be accepted here",
        ));
    }
    for (j, a) in r.audiences.iter().enumerate() {
        if a.trim().is_empty() {
            return Err(cx.err(format!("{key}.audiences[{j}]"), "must not be empty"));
        }
    }
    let keys = match (&r.jwks_uri, &r.jwks_file) {
        (Some(_), Some(_)) => {
            return Err(cx.err(key, "give `jwks_uri` or `jwks_file`, not both"));
        }
        (Some(u), None) => IssuerKeys::JwksUri(https_url(cx, &format!("{key}.jwks_uri"), u)?),
        (None, Some(f)) => {
            let path = cx.resolve(f);
            if !path.is_file() {
                return Err(cx.err(
                    format!("{key}.jwks_file"),
                    format!("file `{}` does not exist", path.display()),
                ));
            }
            IssuerKeys::JwksFile(path)
        }
        (None, None) => {
            https_url(cx, &format!("{key}.issuer"), &r.issuer).map_err(|_| {
                cx.err(
                    format!("{key}.issuer"),
                    format!(
                        "`{}` must be an https:// URL to discover its keys; or give `jwks_uri` or `jwks_file`",
                        r.issuer
                    ),
                )
            })?;
            IssuerKeys::Discovery
        }
    };
    let ca = ca_bundle(cx, format!("{key}.ca"), r.ca.as_deref())?;
    let algorithms = match &r.algorithms {
        None => portcullis_token::Alg::ALL.to_vec(),
        Some(list) if list.is_empty() => {
            return Err(cx.err(format!("{key}.algorithms"), "must not be empty"));
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (j, name) in list.iter().enumerate() {
                let alg = portcullis_token::Alg::from_name(name).ok_or_else(|| {
                    cx.err(
                        format!("{key}.algorithms[{j}]"),
                        format!("`{name}` is not accepted: use ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512 or EdDSA (never `none` or HMAC)"),
                    )
                })?;
                if !out.contains(&alg) {
                    out.push(alg);
                }
            }
            out
        }
    };
    let leeway = match &r.leeway {
        None => crate::DEFAULT_TOKEN_LEEWAY,
        Some(s) => parse_duration(s).map_err(|m| cx.err(format!("{key}.leeway"), m))?,
    };
    if leeway > crate::MAX_TOKEN_LEEWAY {
        return Err(cx.err(format!("{key}.leeway"), "must be at most 5m"));
    }
    for (j, c) in r.required_claims.iter().enumerate() {
        if c.is_empty() {
            return Err(cx.err(format!("{key}.required_claims[{j}]"), "must not be empty"));
        }
    }
    for (j, t) in r.typ.iter().enumerate() {
        if t.is_empty() {
            return Err(cx.err(format!("{key}.typ[{j}]"), "must not be empty"));
        }
    }
    let max_token_bytes = r.max_token_bytes.unwrap_or(crate::DEFAULT_MAX_TOKEN_BYTES);
    if !(256..=crate::HARD_MAX_TOKEN_BYTES).contains(&max_token_bytes) {
        return Err(cx.err(
            format!("{key}.max_token_bytes"),
            format!("must be between 256 and {}", crate::HARD_MAX_TOKEN_BYTES),
        ));
    }
    let t = r.jwks.as_ref();
    let tk = |f: &str| format!("{key}.jwks.{f}");
    let min_refresh = cx.duration(
        &tk("min_refresh"),
        t.and_then(|t| t.min_refresh.as_ref()),
        crate::DEFAULT_JWKS_MIN_REFRESH,
    )?;
    let max_refresh = cx.duration(
        &tk("max_refresh"),
        t.and_then(|t| t.max_refresh.as_ref()),
        crate::DEFAULT_JWKS_MAX_REFRESH,
    )?;
    let default_refresh = cx.duration(
        &tk("default_refresh"),
        t.and_then(|t| t.default_refresh.as_ref()),
        crate::DEFAULT_JWKS_REFRESH.clamp(min_refresh.min(max_refresh), max_refresh),
    )?;
    let unknown_kid_interval = cx.duration(
        &tk("unknown_kid_interval"),
        t.and_then(|t| t.unknown_kid_interval.as_ref()),
        crate::DEFAULT_JWKS_UNKNOWN_KID_INTERVAL,
    )?;
    let max_staleness = cx.duration(
        &tk("max_staleness"),
        t.and_then(|t| t.max_staleness.as_ref()),
        crate::DEFAULT_JWKS_MAX_STALENESS,
    )?;
    let fetch_timeout = cx.duration(
        &tk("fetch_timeout"),
        t.and_then(|t| t.fetch_timeout.as_ref()),
        crate::DEFAULT_JWKS_FETCH_TIMEOUT,
    )?;
    if min_refresh < crate::MIN_JWKS_REFRESH || unknown_kid_interval < crate::MIN_JWKS_REFRESH {
        return Err(cx.err(
            tk(if min_refresh < crate::MIN_JWKS_REFRESH {
                "min_refresh"
            } else {
                "unknown_kid_interval"
            }),
            "must be at least 1s: the issuer must not be asked more often",
        ));
    }
    if min_refresh > max_refresh {
        return Err(cx.err(tk("min_refresh"), "must not be greater than `max_refresh`"));
    }
    if default_refresh < min_refresh || default_refresh > max_refresh {
        return Err(cx.err(
            tk("default_refresh"),
            "must lie between `min_refresh` and `max_refresh`",
        ));
    }
    if max_staleness < max_refresh.min(min_refresh) {
        return Err(cx.err(tk("max_staleness"), "must be at least `min_refresh`"));
    }
    if fetch_timeout > crate::MAX_JWKS_FETCH_TIMEOUT {
        return Err(cx.err(tk("fetch_timeout"), "must be at most 60s"));
    }
    let max_jwks_bytes = t
        .and_then(|t| t.max_bytes)
        .unwrap_or(crate::DEFAULT_JWKS_MAX_BYTES);
    if !(1024..=crate::HARD_MAX_JWKS_BYTES).contains(&max_jwks_bytes) {
        return Err(cx.err(
            tk("max_bytes"),
            format!("must be between 1024 and {}", crate::HARD_MAX_JWKS_BYTES),
        ));
    }
    Ok(Issuer {
        issuer: r.issuer.clone(),
        audiences: r.audiences.clone(),
        keys,
        ca,
        algorithms,
        leeway,
        required_claims: r.required_claims.clone(),
        typ: r.typ.clone(),
        max_token_bytes,
        min_refresh,
        max_refresh,
        default_refresh,
        unknown_kid_interval,
        max_staleness,
        fetch_timeout,
        max_jwks_bytes,
    })
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn socket_addr(cx: &Ctx<'_>, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>().map_err(|_| {
        cx.err(
            key,
            format!("`{s}` is not an address:port such as `127.0.0.1:8443`"),
        )
    })
}

fn listener(cx: &Ctx<'_>, key: &str, l: &raw::RawListener) -> Result<Listener, ConfigError> {
    if !name_ok(&l.name) {
        return Err(cx.err(
            format!("{key}.name"),
            format!(
                "`{}` must be 1-64 characters of a-z, 0-9, `-` or `_`",
                l.name
            ),
        ));
    }
    let bind = socket_addr(cx, &format!("{key}.bind"), &l.bind)?;
    let tls = &l.tls;
    let tkey = format!("{key}.tls");
    let chain = portcullis_authn::pem::load_certs(&cx.input(&tls.cert))
        .map_err(|e| cx.err(format!("{tkey}.cert"), e.to_string()))?;
    let key_der = portcullis_authn::pem::load_key(&cx.input(&tls.key))
        .map_err(|e| cx.err(format!("{tkey}.key"), e.to_string()))?;
    let roots = portcullis_authn::pem::load_certs(&cx.input(&tls.client_ca))
        .map_err(|e| cx.err(format!("{tkey}.client_ca"), e.to_string()))?;
    let mut crls = Vec::new();
    for (i, c) in tls.crls.iter().enumerate() {
        let mut loaded = portcullis_authn::pem::load_crls(&cx.input(c))
            .map_err(|e| cx.err(format!("{tkey}.crls[{i}]"), e.to_string()))?;
        crls.append(&mut loaded);
    }
    let mut spiffe_trust_domains = Vec::new();
    for (i, td) in tls.spiffe_trust_domains.iter().enumerate() {
        let td = TrustDomain::parse(td).map_err(|e| {
            cx.err(
                format!("{tkey}.spiffe_trust_domains[{i}]"),
                format!("`{td}`: {e}"),
            )
        })?;
        spiffe_trust_domains.push(td);
    }
    let mode = match tls.client_auth.unwrap_or(RawClientAuth::Required) {
        RawClientAuth::Required => ClientAuthMode::Required,
        RawClientAuth::Optional => ClientAuthMode::Optional,
    };
    let client_auth = ClientAuthConfig {
        roots,
        crls,
        mode,
        spiffe_trust_domains,
    };
    // Build the rustls configuration once here so that a key that does not
    // match the certificate, or an unusable CA, is a load error.
    portcullis_authn::server_config(chain.clone(), key_der.clone_key(), &client_auth)
        .map_err(|e| cx.err(tkey.clone(), e.to_string()))?;

    let mut server_names = Vec::new();
    for (i, n) in l.server_names.iter().enumerate() {
        server_names.push(host_name(cx, &format!("{key}.server_names[{i}]"), n)?);
    }
    let limits = limits(cx, &format!("{key}.limits"), l.limits.as_ref())?;
    let t = l.timeouts.as_ref();
    let header_read_timeout = cx.duration(
        &format!("{key}.timeouts.header_read"),
        t.and_then(|t| t.header_read.as_ref()),
        crate::DEFAULT_HEADER_READ_TIMEOUT,
    )?;
    let tls_handshake_timeout = cx.duration(
        &format!("{key}.timeouts.tls_handshake"),
        t.and_then(|t| t.tls_handshake.as_ref()),
        crate::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    )?;
    let idle_timeout = cx.duration(
        &format!("{key}.timeouts.idle"),
        t.and_then(|t| t.idle.as_ref()),
        crate::DEFAULT_IDLE_TIMEOUT,
    )?;
    if t.and_then(|t| t.request.as_ref()).is_some() {
        return Err(cx.err(
            format!("{key}.timeouts.request"),
            "request timeouts are set per route, in `routes[].upstream.request_timeout`",
        ));
    }
    Ok(Listener {
        name: l.name.clone(),
        bind,
        tls: ListenerTls {
            chain,
            key: Arc::new(key_der),
            client_auth,
        },
        server_names,
        limits,
        header_read_timeout,
        tls_handshake_timeout,
        idle_timeout,
    })
}

fn limits(cx: &Ctx<'_>, key: &str, l: Option<&raw::RawLimits>) -> Result<Limits, ConfigError> {
    fn bounded(
        cx: &Ctx<'_>,
        key: String,
        v: Option<usize>,
        default: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            return Err(cx.err(key, format!("must be between 1 and {max}")));
        }
        Ok(v)
    }
    Ok(Limits {
        max_header_count: bounded(
            cx,
            format!("{key}.max_header_count"),
            l.and_then(|l| l.max_header_count),
            crate::DEFAULT_MAX_HEADER_COUNT,
            crate::HARD_MAX_HEADER_COUNT,
        )?,
        max_header_bytes: bounded(
            cx,
            format!("{key}.max_header_bytes"),
            l.and_then(|l| l.max_header_bytes),
            crate::DEFAULT_MAX_HEADER_BYTES,
            crate::HARD_MAX_HEADER_BYTES,
        )?,
        max_uri_len: bounded(
            cx,
            format!("{key}.max_uri_len"),
            l.and_then(|l| l.max_uri_len),
            crate::DEFAULT_MAX_URI_LEN,
            crate::HARD_MAX_URI_LEN,
        )?,
        max_connections: bounded(
            cx,
            format!("{key}.max_connections"),
            l.and_then(|l| l.max_connections),
            crate::DEFAULT_MAX_CONNECTIONS,
            1_000_000,
        )?,
        max_body_bytes: match l.and_then(|l| l.max_body_bytes) {
            None => crate::DEFAULT_MAX_BODY_BYTES,
            Some(0) => {
                return Err(cx.err(format!("{key}.max_body_bytes"), "must be greater than zero"))
            }
            Some(v) => v,
        },
    })
}

fn host_name(cx: &Ctx<'_>, key: &str, h: &str) -> Result<String, ConfigError> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with('.')
        && !h.contains("..");
    if !ok {
        return Err(cx.err(key, format!("`{h}` is not a host name")));
    }
    Ok(h.trim_end_matches('.').to_ascii_lowercase())
}

fn route(cx: &Ctx<'_>, key: &str, r: &raw::RawRoute) -> Result<Route, ConfigError> {
    if !name_ok(&r.name) {
        return Err(cx.err(
            format!("{key}.name"),
            format!(
                "`{}` must be 1-64 characters of a-z, 0-9, `-` or `_`",
                r.name
            ),
        ));
    }
    let host = match &r.host {
        None => None,
        Some(h) => Some(host_name(cx, &format!("{key}.host"), h)?),
    };
    let path_prefix = match r.path_prefix.as_deref() {
        None | Some("/") => "/".to_owned(),
        Some(p) => {
            if !is_plain_prefix(p) {
                return Err(cx.err(format!("{key}.path_prefix"), format!("`{p}` must start with `/` and hold only plain segments (no `.`/`..`, `//`, `%`, `;`, `\\` or query)")));
            }
            p.trim_end_matches('/').to_owned()
        }
    };
    let mut methods = Vec::new();
    for (i, m) in r.methods.iter().enumerate() {
        let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
        let method = http::Method::from_bytes(m.as_bytes())
            .ok()
            .filter(|_| ok)
            .ok_or_else(|| {
                cx.err(
                    format!("{key}.methods[{i}]"),
                    format!("`{m}` is not an uppercase HTTP method"),
                )
            })?;
        methods.push(method);
    }
    let u = &r.upstream;
    let ukey = format!("{key}.upstream");
    let uri: http::Uri = u
        .url
        .parse()
        .map_err(|_| cx.err(format!("{ukey}.url"), format!("`{}` is not a URL", u.url)))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| cx.err(format!("{ukey}.url"), "needs a scheme: http:// or https://"))?;
    let https = scheme == http::uri::Scheme::HTTPS;
    if scheme != http::uri::Scheme::HTTP && !https {
        return Err(cx.err(
            format!("{ukey}.url"),
            format!("scheme `{scheme}` is not supported: use http or https"),
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| cx.err(format!("{ukey}.url"), "needs a host"))?;
    if authority.as_str().contains('@') {
        return Err(cx.err(format!("{ukey}.url"), "must not hold user info"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(cx.err(
            format!("{ukey}.url"),
            "must not hold a path or query: the request path is forwarded as judged",
        ));
    }
    let ca =
        match (&u.ca, https) {
            (Some(c), true) => Some(
                portcullis_authn::pem::load_certs(&cx.input(c))
                    .map_err(|e| cx.err(format!("{ukey}.ca"), e.to_string()))?,
            ),
            (None, true) => return Err(cx.err(
                format!("{ukey}.ca"),
                "an https upstream needs `ca`: the CA bundle its certificate is verified against",
            )),
            (Some(_), false) => {
                return Err(cx.err(format!("{ukey}.ca"), "only applies to https upstreams"))
            }
            (None, false) => None,
        };
    let client_headers = match &r.client_headers {
        None => None,
        Some(list) => Some(client_headers(cx, &format!("{key}.client_headers"), list)?.into()),
    };
    Ok(Route {
        name: r.name.clone(),
        host,
        path_prefix,
        methods,
        pass_bearer_token: r.pass_bearer_token.unwrap_or(false),
        browser_login: r.browser_login.unwrap_or(false),
        client_headers,
        upstream: Upstream {
            scheme,
            authority,
            ca,
            connect_timeout: cx.duration(
                &format!("{ukey}.connect_timeout"),
                u.connect_timeout.as_ref(),
                crate::DEFAULT_CONNECT_TIMEOUT,
            )?,
            request_timeout: cx.duration(
                &format!("{ukey}.request_timeout"),
                u.request_timeout.as_ref(),
                crate::DEFAULT_REQUEST_TIMEOUT,
            )?,
            idle_timeout: cx.duration(
                &format!("{ukey}.idle_timeout"),
                u.idle_timeout.as_ref(),
                crate::DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            )?,
            body_timeout: cx.duration(
                &format!("{ukey}.body_timeout"),
                u.body_timeout.as_ref(),
                crate::DEFAULT_BODY_TIMEOUT,
            )?,
        },
    })
}

/// What a policy that loads may still get wrong, for the operator: the
/// policy's own [`Policy::warnings`], and, against the configuration it
/// runs with, token bindings for an issuer that neither `bearer.issuers`
/// nor `oidc` configures (they grant nothing: their tokens are refused
/// before the policy sees them). Not load errors: one policy may serve
/// gateways that trust different issuers.
pub fn policy_warnings(config: &Config, policy: &Policy) -> Vec<String> {
    let mut out = policy.warnings();
    let configured: HashSet<&str> = config
        .bearer
        .iter()
        .flat_map(|b| b.issuers.iter().map(|i| i.issuer.as_str()))
        .chain(config.oidc.iter().map(|o| o.issuer.as_str()))
        .collect();
    policy
        .token_issuers()
        .into_iter()
        .filter(|i| !configured.contains(i))
        .for_each(|i| {
            out.push(format!(
                "bindings name the token issuer `{i}`, which neither `bearer.issuers` nor `oidc` configures: they grant no role"
            ));
        });
    out
}

/// A rule whose every request the gateway routes elsewhere than to the
/// routes it names: on each, a route for the same host with a longer
/// prefix covering the rule's path, or with the same prefix and a method
/// list, takes the rule's methods. The router picks such a route first, so
/// the rule never sees a request; as a deny rule it would be dead while the
/// policy looked right. (A rule that some route it names still sees is
/// live: naming a route too many is harmless.)
fn shadowed_rule(policy: &Policy, routes: &[Route]) -> Option<String> {
    // Rule id -> how many routes it names, and the routes it is shadowed
    // on (in configuration order) with why.
    type ShadowedOn<'a> = (usize, Vec<(&'a str, String)>);
    let mut shadowed: BTreeMap<&str, ShadowedOn<'_>> = BTreeMap::new();
    for route in routes {
        for other in routes.iter().filter(|o| picked_before(o, route)) {
            for (id, methods, named) in policy.rules_only_under(&route.name, &other.path_prefix) {
                if !takes_methods(other, route, methods) {
                    continue;
                }
                let on = &mut shadowed.entry(id).or_insert((named, Vec::new())).1;
                if !on.iter().any(|(name, _)| *name == route.name) {
                    on.push((&route.name, shadow_message(id, route, other)));
                }
            }
        }
    }
    let (_, (named, mut on)) = shadowed
        .into_iter()
        .find(|(_, (named, on))| on.len() == *named)?;
    let (_, why) = on.swap_remove(0);
    Some(if named > 1 {
        format!("{why} (and so on every route it names)")
    } else {
        why
    })
}

/// Whether the router tries `other` before `route` for every path under
/// `other`'s prefix: the same host, and a longer prefix under `route`'s,
/// or the same prefix and a method list where `route` has none (a route
/// naming methods is picked before one for every method, never the other
/// way round).
fn picked_before(other: &Route, route: &Route) -> bool {
    if std::ptr::eq(route, other) || other.host != route.host {
        return false;
    }
    let longer = other.path_prefix.len() > route.path_prefix.len()
        && (route.path_prefix == "/"
            || other
                .path_prefix
                .strip_prefix(route.path_prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/')));
    let same = other.path_prefix == route.path_prefix;
    longer || same && route.methods.is_empty() && !other.methods.is_empty()
}

/// Whether `other` takes every method a rule naming `methods` (`None`:
/// every method) can see on `route`.
fn takes_methods(other: &Route, route: &Route, methods: Option<Vec<&str>>) -> bool {
    if other.methods.is_empty() {
        return true;
    }
    let on_route =
        |m: &str| route.methods.is_empty() || route.methods.iter().any(|r| r.as_str() == m);
    let seen: Vec<&str> = match methods {
        Some(m) => m.into_iter().filter(|m| on_route(m)).collect(),
        // Every method: a method list cannot take them all.
        None if route.methods.is_empty() => return false,
        None => route.methods.iter().map(http::Method::as_str).collect(),
    };
    !seen.is_empty()
        && seen
            .iter()
            .all(|m| other.methods.iter().any(|o| o.as_str() == *m))
}

fn shadow_message(id: &str, route: &Route, other: &Route) -> String {
    let methods = if other.methods.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = other.methods.iter().map(http::Method::as_str).collect();
        format!(", methods {}", names.join(", "))
    };
    format!(
        "rule `{id}` can never match on route `{}`: every request for its path and methods goes to route `{}` (path prefix `{}`{methods}), which the gateway picks first; name that route in the rule",
        route.name, other.name, other.path_prefix
    )
}

/// A route's `client_headers`: header names, each one the gateway would
/// otherwise forward. A name it always removes or writes itself is an
/// error, not a silent no-op: listing `x-forwarded-user` must not look as
/// if it let the client's value through.
fn client_headers(
    cx: &Ctx<'_>,
    key: &str,
    list: &[String],
) -> Result<Vec<http::HeaderName>, ConfigError> {
    let mut names = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let name = http::HeaderName::from_bytes(raw.as_bytes())
            .map_err(|_| cx.err(&at, format!("`{raw}` is not a header name")))?;
        let n = name.as_str();
        // As the sanitiser reads names: `_` counts as `-`.
        let canonical = portcullis_http_guard::canonical_header_name(n);
        let why = if portcullis_http_guard::HOP_BY_HOP_HEADERS.contains(&&*canonical) {
            Some("a hop-by-hop header: it is about the client's connection, never forwarded")
        } else if portcullis_http_guard::is_protected_header(n) {
            Some("a header the gateway removes from every client request (its own namespace, or a spoofable identity header)")
        } else if canonical == "host" {
            Some("the gateway always sends the client's host")
        } else if canonical == "content-length" {
            Some("always forwarded with a body")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(cx.err(&at, format!("`{n}` cannot be listed: {why}")));
        }
        names.push(name);
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Ok(names)
}

/// Route prefixes are compared against normalised paths, so they must
/// themselves be in normal form.
fn is_plain_prefix(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_graphic() && !matches!(b, b'%' | b';' | b'\\' | b'?' | b'#')
                })
        })
}

fn assertion(cx: &Ctx<'_>, a: Option<&raw::RawAssertion>) -> Result<Assertion, ConfigError> {
    let signing_key_pkcs8 = match a.and_then(|a| a.signing_key.as_ref()) {
        None => None,
        Some(p) => {
            let path = cx.input(p);
            let key = portcullis_authn::pem::load_key(&path)
                .map_err(|e| cx.err("identity_assertion.signing_key", e.to_string()))?;
            let rustls_pki_types::PrivateKeyDer::Pkcs8(der) = key else {
                return Err(cx.err(
                    "identity_assertion.signing_key",
                    format!(
                        "file `{}` must hold a PKCS#8 P-256 key (`BEGIN PRIVATE KEY`)",
                        path.display()
                    ),
                ));
            };
            let bytes = zeroize::Zeroizing::new(der.secret_pkcs8_der().to_vec());
            aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &bytes,
            )
            .map_err(|_| {
                cx.err(
                    "identity_assertion.signing_key",
                    format!("file `{}` does not hold a P-256 ECDSA key", path.display()),
                )
            })?;
            Some(bytes)
        }
    };
    let issuer = a
        .and_then(|a| a.issuer.clone())
        .unwrap_or_else(|| crate::DEFAULT_ASSERTION_ISSUER.to_owned());
    if issuer.trim().is_empty() {
        return Err(cx.err("identity_assertion.issuer", "must not be empty"));
    }
    let ttl = cx.duration(
        "identity_assertion.ttl",
        a.and_then(|a| a.ttl.as_ref()),
        crate::DEFAULT_ASSERTION_TTL,
    )?;
    if ttl > crate::MAX_ASSERTION_TTL {
        return Err(cx.err(
            "identity_assertion.ttl",
            "must be at most 10m: assertions are short-lived",
        ));
    }
    let scope = match a.and_then(|a| a.scope.as_deref()) {
        None | Some("request") => crate::AssertionScope::Request,
        Some("connection") => crate::AssertionScope::Connection,
        Some(other) => {
            return Err(cx.err(
                "identity_assertion.scope",
                format!(
                    "`{}` is not a scope: use `request` or `connection`",
                    other.escape_default()
                ),
            ))
        }
    };
    Ok(Assertion {
        signing_key_pkcs8,
        issuer,
        ttl,
        scope,
    })
}

/// The `Via` pseudonym: an HTTP token (RFC 9110 §5.6.2), so the entry
/// `1.1 <pseudonym>` is one list member an upstream reads as written.
fn via(cx: &Ctx<'_>, v: Option<&raw::RawVia>) -> Result<Option<String>, ConfigError> {
    if v.and_then(|v| v.send) == Some(false) {
        if v.is_some_and(|v| v.pseudonym.is_some()) {
            return Err(cx.err(
                "via.pseudonym",
                "is set but `via.send` is false: remove one of the two",
            ));
        }
        return Ok(None);
    }
    let pseudonym = v
        .and_then(|v| v.pseudonym.clone())
        .unwrap_or_else(|| crate::DEFAULT_VIA_PSEUDONYM.to_owned());
    if pseudonym.is_empty()
        || pseudonym.len() > crate::MAX_VIA_PSEUDONYM_LEN
        || !pseudonym.bytes().all(portcullis_http_guard::is_tchar)
    {
        return Err(cx.err(
            "via.pseudonym",
            format!(
                "`{}` is not a token of 1 to {} letters, digits or `!#$%&'*+-.^_`|~`",
                pseudonym.escape_default(),
                crate::MAX_VIA_PSEUDONYM_LEN
            ),
        ));
    }
    Ok(Some(pseudonym))
}

/// A policy read from disk and checked against the configured routes.
#[derive(Debug)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Reads and compiles the policy file, and checks that every route it
/// names exists in `routes`.
pub fn load_policy(path: &Path, routes: &[Route]) -> Result<LoadedPolicy, ConfigError> {
    let text =
        read_bounded(path, MAX_POLICY_FILE_BYTES).map_err(|m| ConfigError::new(path, "", m))?;
    compile_policy(path, &text, routes)
}

/// Compiles a policy held in memory (e.g. from a verified bundle) and
/// checks it against the configured routes; `origin` names it in errors.
pub fn compile_policy(
    origin: &Path,
    text: &str,
    routes: &[Route],
) -> Result<LoadedPolicy, ConfigError> {
    let path = origin;
    if text.len() > MAX_POLICY_FILE_BYTES {
        return Err(ConfigError::new(
            path,
            "",
            format!("larger than {MAX_POLICY_FILE_BYTES} bytes"),
        ));
    }
    let policy = Policy::from_yaml(text).map_err(|e| ConfigError::new(path, "", e.to_string()))?;
    let known: HashSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    let mut unknown: Vec<&str> = policy
        .route_names()
        .filter(|r| !known.contains(r))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        let list = unknown
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ConfigError::new(
            path,
            "rules",
            format!("rules name routes the configuration does not define: {list}"),
        ));
    }
    // A rule whose path lies outside its route's prefix never sees a
    // request; as a deny rule (a path written relative to the prefix, say)
    // it would be dead while the policy looked right.
    for route in routes {
        if let Some(id) = policy
            .rules_outside_prefix(&route.name, &route.path_prefix)
            .next()
        {
            return Err(ConfigError::new(
                path,
                "rules",
                format!(
                    "rule `{id}` can never match on route `{}`: its path lies outside the route's path prefix `{}` (rule paths are whole request paths)",
                    route.name, route.path_prefix
                ),
            ));
        }
    }
    if let Some(message) = shadowed_rule(&policy, routes) {
        return Err(ConfigError::new(path, "rules", message));
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(LoadedPolicy { policy, sha256 })
}
