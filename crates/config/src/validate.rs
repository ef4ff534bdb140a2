//! Raw structs -> typed [`Config`]: every check happens here, once, at load.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_authn::{ClientAuthConfig, ClientAuthMode};
use portcullis_identity::TrustDomain;
use portcullis_policy::Policy;

use crate::raw::{self, RawClientAuth, RawConfig};
use crate::{
    parse_duration, read_bounded, Admin, Assertion, Audit, AuditDest, Config, ConfigError, Limits,
    Listener, ListenerTls, PolicySource, Route, Upstream,
};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_FILE_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::new(path, "", "file is empty"));
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

    let policy = PolicySource {
        path: cx.resolve(&raw.policy.file),
        watch: raw.policy.watch.unwrap_or(true),
        poll_interval: cx.duration(
            "policy.poll_interval",
            raw.policy.poll_interval.as_ref(),
            crate::DEFAULT_POLICY_POLL_INTERVAL,
        )?,
    };
    if !policy.path.is_file() {
        return Err(cx.err(
            "policy.file",
            format!("file `{}` does not exist", policy.path.display()),
        ));
    }

    let admin = match &raw.admin {
        Some(a) => Some(Admin {
            bind: socket_addr(&cx, "admin.bind", &a.bind)?,
        }),
        None => Some(Admin {
            bind: socket_addr(&cx, "admin.bind", crate::DEFAULT_ADMIN_BIND)?,
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

    let inputs = cx.inputs.take();
    Ok(Config {
        source: file.to_owned(),
        inputs,
        listeners,
        routes,
        policy,
        admin,
        assertion,
        audit,
        drain_timeout,
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
    Ok(Route {
        name: r.name.clone(),
        host,
        path_prefix,
        methods,
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
    Ok(Assertion {
        signing_key_pkcs8,
        issuer,
        ttl,
    })
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
    let policy = Policy::from_yaml(&text).map_err(|e| ConfigError::new(path, "", e.to_string()))?;
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
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(LoadedPolicy { policy, sha256 })
}
