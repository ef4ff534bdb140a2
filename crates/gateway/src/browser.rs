//! Browser login (OpenID Connect, authorization code + PKCE) and the
//! sessions it creates.
//!
//! - A request to a `browser_login` route without a live session is sent
//!   to the provider (HTML clients) or refused with 401 (API clients).
//! - `/.portcullis/callback` finishes a login: the sealed transaction
//!   cookie's `state` (constant time), `iss` (RFC 9207), the code exchange,
//!   the ID token (signature from the provider's JWKS, `iss`, `aud` = our
//!   client id, `azp`, `nonce`, `exp`), then one store write.
//! - Every request with a session cookie reads the session from the
//!   authoritative store: revoked, expired, idle, bound to another client
//!   certificate — no session. A store error is a 503, never a cached yes.
//! - A policy denial on `when.mfa` sends the browser back to the provider
//!   (`prompt=login`, `max_age=0`); the callback writes the new MFA state
//!   into the session with one compare-and-set before answering.
//! - `/.portcullis/logout` revokes the session and ends it at the provider.

mod cookie;
mod provider;
mod refresh;
mod txn;

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, StatusCode};
use portcullis_config::{Oidc, Sessions};
use portcullis_identity::{CertIdentity, TokenIdentity};
use portcullis_jwks::{FetchSettings, JwksSource, KeySource};
use portcullis_session::{CasOutcome, Sealer, Session, SessionId, SessionKey, SessionStore};
use portcullis_token::IssuerRules;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::response::Refusal;

pub(crate) use provider::query_param;

/// Paths the gateway answers itself.
pub const CALLBACK_PATH: &str = "/.portcullis/callback";
pub const LOGOUT_PATH: &str = "/.portcullis/logout";
/// The login transaction cookie.
pub const LOGIN_COOKIE: &str = "__Host-portcullis-login";
/// `amr` values that count as a second factor (RFC 8176).
pub const MFA_METHODS: [&str; 8] = ["otp", "hwk", "swk", "sms", "mfa", "fpt", "face", "iris"];
/// `last_seen` is written at most this often per session (idle tracking
/// costs one write a minute, not one per request).
pub(crate) const TOUCH_INTERVAL_SECS: i64 = 60;
/// Compare-and-set retries before giving up with 503.
const CAS_RETRIES: usize = 8;
/// Provider tokens are refreshed this long before they expire.
pub(crate) const REFRESH_MARGIN_SECS: i64 = 60;
/// An instance that claims a refresh owns it this long (so two instances
/// never spend one rotating refresh token twice).
pub(crate) const REFRESH_LEASE_SECS: i64 = 30;

/// How long the provider's tokens count as valid when its token response
/// gives no `expires_in` (RFC 6749 makes it only recommended): the
/// session is then re-verified at this pace instead of never.
pub(crate) const DEFAULT_PROVIDER_TOKEN_SECS: i64 = 300;

/// When the provider's tokens of a session answered at `t` expire.
pub(crate) fn provider_expiry(t: i64, expires_in: Option<i64>) -> i64 {
    t.saturating_add(expires_in.unwrap_or(DEFAULT_PROVIDER_TOKEN_SECS))
}

/// Joins a request's `Cookie` fields into one for the upstream, when
/// browser sessions are off (with them on,
/// [`BrowserAuth::strip_cookies`] does this too).
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    cookie::rewrite(headers, &[]);
}

/// The browser login of one snapshot; carried over on reload when its
/// configuration is unchanged (the embedded store file can be opened once).
pub(crate) struct BrowserAuth {
    oidc: Oidc,
    sessions: Sessions,
    store: Arc<dyn SessionStore>,
    sealer: Arc<Sealer>,
    txn: Arc<txn::TxnSealer>,
    provider: Arc<provider::Provider>,
    keys: Arc<KeySource>,
    rules: IssuerRules,
    /// Stops the provider-refresh task when the last copy is dropped.
    _refresher: Arc<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for BrowserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserAuth")
            .field("issuer", &self.oidc.issuer)
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

/// A live session and the identity the policy judges.
pub(crate) struct LiveSession {
    pub(crate) session: Session,
    pub(crate) identity: Arc<TokenIdentity>,
}

/// What the session cookie of a request amounts to.
pub(crate) enum SessionLookup {
    /// No session cookie.
    None,
    /// A cookie that names no usable session; the reason is for the log
    /// and audit record (the browser gets a fresh login or 401).
    Rejected(&'static str),
    Live(Box<LiveSession>),
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn hex_key(k: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if k.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new(vec![0u8; 32]);
    for (o, pair) in out.iter_mut().zip(k.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl BrowserAuth {
    /// Builds the browser login for the configuration; reuses `previous`
    /// (store, keys, discovery) when nothing changed. Runs on a blocking
    /// thread of the gateway's runtime.
    pub(crate) fn build(
        oidc: &Oidc,
        sessions: &Sessions,
        previous: Option<&BrowserAuth>,
        rt: &tokio::runtime::Handle,
        metrics: &Arc<portcullis_telemetry::Metrics>,
    ) -> Result<BrowserAuth, String> {
        if let Some(p) = previous {
            if p.oidc == *oidc && p.sessions == *sessions {
                return Ok(BrowserAuth {
                    oidc: p.oidc.clone(),
                    sessions: p.sessions.clone(),
                    store: Arc::clone(&p.store),
                    sealer: Arc::clone(&p.sealer),
                    txn: Arc::clone(&p.txn),
                    provider: Arc::clone(&p.provider),
                    keys: Arc::clone(&p.keys),
                    rules: p.rules.clone(),
                    _refresher: Arc::clone(&p._refresher),
                });
            }
        }
        let mut keys = Vec::with_capacity(sessions.refresh_token_keys.len());
        for (id, secret) in &sessions.refresh_token_keys {
            let bytes = hex_key(secret.0.as_bytes())
                .ok_or_else(|| format!("sessions.refresh_token_keys `{id}`: not a 32-byte key"))?;
            keys.push((id.clone(), bytes));
        }
        let txn_secret = keys
            .first()
            .map(|(_, k)| k.clone())
            .ok_or("sessions.refresh_token_keys: empty")?;
        let sealer = Sealer::new(keys).map_err(|e| format!("sessions.refresh_token_keys: {e}"))?;
        let txn = txn::TxnSealer::new(&txn_secret)?;
        // The store of the previous snapshot is reused when only other
        // settings changed: an embedded file cannot be opened twice.
        let store = match previous {
            Some(p) if p.sessions.store == sessions.store => Arc::clone(&p.store),
            _ => rt.block_on(crate::sessions::open_store(&sessions.store))?,
        };
        let client = provider::ProviderClient::new(oidc.ca.as_deref())?;
        let keys = rt
            .block_on(KeySource::start(
                oidc.issuer.clone(),
                JwksSource::Discovery {
                    issuer: oidc.issuer.clone(),
                },
                FetchSettings {
                    roots: oidc.ca.clone(),
                    ..FetchSettings::default()
                },
            ))
            .map_err(|e| format!("oidc: {e}"))?;
        let rules = IssuerRules::new(
            oidc.issuer.clone(),
            vec![oidc.client_id.clone()],
            oidc.algorithms.clone(),
        )
        .and_then(|r| r.with_leeway_secs(oidc.leeway.as_secs()))
        .map_err(|e| format!("oidc: {e}"))?;
        let sealer = Arc::new(sealer);
        let provider = Arc::new(provider::Provider::new(client));
        let (stop, stopped) = tokio::sync::watch::channel(());
        let _guard = rt.enter();
        tokio::spawn(refresh::refresh_loop(
            refresh::Refresher {
                store: Arc::clone(&store),
                sealer: Arc::clone(&sealer),
                endpoint: Arc::new(refresh::ProviderEndpoint {
                    oidc: oidc.clone(),
                    provider: Arc::clone(&provider),
                    keys: Arc::clone(&keys),
                    rules: rules.clone(),
                }),
                metrics: Arc::clone(metrics),
                per_round: refresh::MAX_REFRESH_PER_ROUND,
            },
            sessions.provider_refresh_interval,
            stopped,
        ));
        Ok(BrowserAuth {
            oidc: oidc.clone(),
            sessions: sessions.clone(),
            store,
            sealer,
            txn: Arc::new(txn),
            provider,
            keys,
            rules,
            _refresher: Arc::new(stop),
        })
    }

    /// Removes the gateway's own cookies before a request goes upstream
    /// (and joins its `Cookie` fields, as [`join_cookies`]).
    pub(crate) fn strip_cookies(&self, headers: &mut HeaderMap) {
        cookie::rewrite(headers, &[&self.sessions.cookie_name, LOGIN_COOKIE]);
    }

    /// Removes an upstream's `Set-Cookie` for the gateway's own cookies
    /// before its response goes to the client.
    pub(crate) fn strip_set_cookies(&self, headers: &mut HeaderMap) {
        cookie::strip_set_cookies(headers, &[&self.sessions.cookie_name, LOGIN_COOKIE]);
    }

    pub(crate) fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Reads the request's session from the authoritative store.
    pub(crate) async fn lookup(
        &self,
        headers: &HeaderMap,
        cert: Option<&CertIdentity>,
    ) -> Result<SessionLookup, Refusal> {
        let Some(value) = cookie::get(headers, &self.sessions.cookie_name) else {
            return Ok(SessionLookup::None);
        };
        let Some(id) = SessionId::from_cookie(value) else {
            return Ok(SessionLookup::Rejected("session_cookie_malformed"));
        };
        let key = id.key();
        let session = self.store.get(&key).await.map_err(store_refusal)?;
        let Some(mut session) = session else {
            return Ok(SessionLookup::Rejected("session_unknown"));
        };
        // A session made with a provider the configuration no longer
        // names: that provider is not trusted any more (a reload changed
        // `oidc.issuer`), so its login does not count either.
        if session.issuer != self.oidc.issuer {
            return Ok(SessionLookup::Rejected("session_issuer_not_configured"));
        }
        let t = now();
        if session.revoked {
            return Ok(SessionLookup::Rejected("session_revoked"));
        }
        if !session.is_live(t) {
            return Ok(SessionLookup::Rejected("session_expired"));
        }
        if let Some(bound) = session.bound_thumbprint {
            if cert.map(|c| c.thumbprint.0) != Some(bound) {
                return Ok(SessionLookup::Rejected(
                    "session_bound_to_another_certificate",
                ));
            }
        }
        if t - session.last_seen >= TOUCH_INTERVAL_SECS {
            let mut next = session.clone();
            next.last_seen = t;
            next.version = session.version + 1;
            match self
                .store
                .compare_and_set(&next, session.version)
                .await
                .map_err(store_refusal)?
            {
                CasOutcome::Updated => session = next,
                // Someone else wrote first (a touch, a step-up, a
                // revocation): judge by what is stored now.
                CasOutcome::Conflict(current) => {
                    if !current.is_live(t) {
                        return Ok(SessionLookup::Rejected("session_revoked"));
                    }
                    session = *current;
                }
                CasOutcome::Missing => return Ok(SessionLookup::Rejected("session_unknown")),
            }
        }
        let identity = Arc::new(self.identity_of(&session, cert));
        Ok(SessionLookup::Live(Box::new(LiveSession {
            session,
            identity,
        })))
    }

    fn identity_of(&self, s: &Session, cert: Option<&CertIdentity>) -> TokenIdentity {
        let mut claims = s.claims.clone();
        claims.insert("iss".into(), json!(s.issuer));
        claims.insert("sub".into(), json!(s.subject));
        claims.insert("amr".into(), json!(s.amr));
        claims.insert("auth_time".into(), json!(s.auth_time));
        match &s.acr {
            Some(a) => claims.insert("acr".into(), json!(a)),
            None => claims.remove("acr"),
        };
        TokenIdentity {
            issuer: s.issuer.clone(),
            subject: Some(s.subject.clone()),
            claims,
            bound_to: s
                .bound_thumbprint
                .filter(|b| cert.map(|c| c.thumbprint.0) == Some(*b))
                .map(portcullis_identity::Thumbprint),
        }
    }

    /// Sends the browser to the provider. `step_up` names the session a
    /// fresh authentication upgrades.
    pub(crate) async fn login_redirect(
        &self,
        return_to: &str,
        step_up: Option<&SessionKey>,
        code: &'static str,
        detail: String,
    ) -> Result<Refusal, Refusal> {
        let meta =
            self.provider.meta(&self.oidc.issuer).await.map_err(|e| {
                Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "oidc_discovery", e)
            })?;
        let rnd = |n| {
            txn::random_b64(n)
                .map_err(|e| Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "internal", e))
        };
        let t = txn::LoginTxn {
            state: rnd(32)?,
            nonce: rnd(32)?,
            verifier: rnd(32)?,
            return_to: safe_return_to(return_to),
            created: now(),
            step_up: step_up.map(SessionKey::to_hex),
        };
        let sealed = self
            .txn
            .seal(&t)
            .map_err(|e| Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "internal", e))?;
        let redirect_uri = self.oidc.redirect_uri.to_string();
        let scope = self.oidc.scopes.join(" ");
        let challenge = txn::s256(&t.verifier);
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.oidc.client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", &scope),
            ("state", &t.state),
            ("nonce", &t.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if step_up.is_some() {
            // A fresh authentication, not the provider's existing session.
            params.push(("prompt", "login"));
            params.push(("max_age", "0"));
        }
        let sep = if meta.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!(
            "{}{sep}{}",
            meta.authorization_endpoint,
            provider::form_encode(&params)
        );
        let mut r = Refusal::deny(StatusCode::FOUND, code, detail);
        r.headers.push((header::LOCATION, header_value(&location)?));
        r.headers.push((
            header::SET_COOKIE,
            header_value(&cookie::set(
                LOGIN_COOKIE,
                &sealed,
                Some(u64::try_from(txn::MAX_LOGIN_AGE_SECS).unwrap_or(600)),
            ))?,
        ));
        Ok(r)
    }

    /// `/.portcullis/callback`. On success: the session cookie and a
    /// redirect to where the login started. Every failure is a 401 with
    /// the precise reason for the log, and nothing is written.
    pub(crate) async fn callback(
        &self,
        query: &str,
        headers: &HeaderMap,
        cert: Option<&CertIdentity>,
    ) -> Result<(http::Response<crate::upstream::Body>, String), Refusal> {
        let fail = |code: &'static str, detail: String| {
            let mut r = Refusal::deny(StatusCode::UNAUTHORIZED, code, detail);
            if let Ok(v) = HeaderValue::from_str(&cookie::clear(LOGIN_COOKIE)) {
                r.headers.push((header::SET_COOKIE, v));
            }
            r
        };
        let t_now = now();
        let txn = cookie::get(headers, LOGIN_COOKIE)
            .and_then(|c| self.txn.open(c, t_now))
            .ok_or_else(|| fail("login_transaction_invalid", "no valid login transaction cookie (missing, forged, expired or from another login)".into()))?;
        if let Some(name) = repeated_param(query, &["state", "code", "iss", "error"]) {
            return Err(fail(
                "login_param_repeated",
                format!("`{name}` appears more than once in the callback (RFC 6749 3.1)"),
            ));
        }
        let state = query_param(query, "state").unwrap_or_default();
        if !crate::https::ct_eq(state.as_bytes(), txn.state.as_bytes()) {
            return Err(fail(
                "login_state_mismatch",
                "`state` does not match the login transaction".into(),
            ));
        }
        let meta =
            self.provider.meta(&self.oidc.issuer).await.map_err(|e| {
                Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "oidc_discovery", e)
            })?;
        match query_param(query, "iss") {
            Some(iss) if iss != self.oidc.issuer => {
                return Err(fail(
                    "login_iss_mismatch",
                    "`iss` of the authorization response names another issuer (RFC 9207)".into(),
                ))
            }
            None if meta.iss_parameter_supported => {
                return Err(fail(
                    "login_iss_missing",
                    "the provider promises `iss` in authorization responses but sent none".into(),
                ))
            }
            _ => {}
        }
        if let Some(err) = query_param(query, "error") {
            return Err(fail(
                "login_error",
                format!("the provider answered `{}`", escape(&err)),
            ));
        }
        let code = Zeroizing::new(
            query_param(query, "code")
                .ok_or_else(|| fail("login_no_code", "no `code` in the callback".into()))?,
        );
        let redirect_uri = self.oidc.redirect_uri.to_string();
        let (status, body) = self
            .provider
            .client
            .token(
                &meta,
                &self.oidc,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", &redirect_uri),
                    ("code_verifier", &txn.verifier),
                ],
            )
            .await
            .map_err(|e| Refusal::error(StatusCode::BAD_GATEWAY, "oidc_token_endpoint", e))?;
        if !status.is_success() {
            let err = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            return Err(fail(
                "login_code_refused",
                format!("the token endpoint refused the code: `{}`", escape(err)),
            ));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                fail(
                    "login_no_id_token",
                    "the token response has no id_token".into(),
                )
            })?;
        let verified = self
            .verify_id_token(id_token, &txn.nonce)
            .await
            .map_err(|(c, d)| fail(c, d))?;
        let subject = verified
            .subject
            .clone()
            .ok_or_else(|| fail("login_id_token_invalid", "the ID token has no `sub`".into()))?;
        let amr: Vec<String> = verified
            .claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let acr = verified
            .claims
            .get("acr")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let auth_time = verified
            .claims
            .get("auth_time")
            .and_then(Value::as_i64)
            .unwrap_or(t_now);
        let mfa = amr.iter().any(|m| MFA_METHODS.contains(&m.as_str()));
        let refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|s| Zeroizing::new(s.to_owned()));
        let expires_in = body.get("expires_in").and_then(Value::as_i64);

        let (set_cookie, session_key) = match &txn.step_up {
            None => {
                let id = SessionId::generate().map_err(|_| {
                    Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "internal", "no randomness")
                })?;
                let key = id.key();
                let refresh_token = match &refresh {
                    Some(r) => Some(self.sealer.seal(&key, r.as_bytes()).map_err(|e| {
                        Refusal::error(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string())
                    })?),
                    None => None,
                };
                let absolute =
                    i64::try_from(self.sessions.absolute_timeout.as_secs()).unwrap_or(i64::MAX);
                let session = Session {
                    key,
                    issuer: self.oidc.issuer.clone(),
                    subject: subject.clone(),
                    claims: verified.claims.clone(),
                    amr,
                    acr,
                    auth_time,
                    mfa_time: mfa.then_some(auth_time),
                    bound_thumbprint: cert.map(|c| c.thumbprint.0),
                    refresh_token,
                    provider_token_expires_at: refresh
                        .as_ref()
                        .map(|_| provider_expiry(t_now, expires_in)),
                    created_at: t_now,
                    last_seen: t_now,
                    expires_at: t_now.saturating_add(absolute),
                    idle_secs: i64::try_from(self.sessions.idle_timeout.as_secs())
                        .unwrap_or(i64::MAX),
                    revoked: false,
                    version: 1,
                };
                self.store.create(&session).await.map_err(store_refusal)?;
                let max_age = u64::try_from(absolute).unwrap_or(0);
                (
                    Some(cookie::set(
                        &self.sessions.cookie_name,
                        &id.to_cookie(),
                        Some(max_age),
                    )),
                    key,
                )
            }
            Some(hex) => {
                let key = SessionKey::from_hex(hex).ok_or_else(|| {
                    fail("login_transaction_invalid", "bad step-up session".into())
                })?;
                // One compare-and-set: the new authentication is in the
                // authoritative store before the browser is answered.
                let mut done = false;
                for _ in 0..CAS_RETRIES {
                    let Some(current) = self.store.get(&key).await.map_err(store_refusal)? else {
                        return Err(fail(
                            "session_unknown",
                            "the session to step up is gone".into(),
                        ));
                    };
                    if !current.is_live(t_now) {
                        return Err(fail(
                            "session_revoked",
                            "the session to step up is revoked or expired".into(),
                        ));
                    }
                    if current.subject != subject || current.issuer != self.oidc.issuer {
                        return Err(fail(
                            "step_up_other_user",
                            "the step-up login is another user than the session's".into(),
                        ));
                    }
                    let mut next = current.clone();
                    next.amr = amr.clone();
                    next.acr = acr.clone();
                    next.auth_time = auth_time;
                    if mfa {
                        next.mfa_time = Some(auth_time);
                    }
                    next.claims = verified.claims.clone();
                    next.last_seen = t_now;
                    next.version = current.version + 1;
                    if let Some(r) = &refresh {
                        next.refresh_token =
                            Some(self.sealer.seal(&key, r.as_bytes()).map_err(|e| {
                                Refusal::error(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "internal",
                                    e.to_string(),
                                )
                            })?);
                        next.provider_token_expires_at = Some(provider_expiry(t_now, expires_in));
                    }
                    match self
                        .store
                        .compare_and_set(&next, current.version)
                        .await
                        .map_err(store_refusal)?
                    {
                        CasOutcome::Updated => {
                            done = true;
                            break;
                        }
                        CasOutcome::Conflict(_) => continue,
                        CasOutcome::Missing => {
                            return Err(fail(
                                "session_unknown",
                                "the session to step up is gone".into(),
                            ))
                        }
                    }
                }
                if !done {
                    return Err(Refusal::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "session_contended",
                        "the session kept changing during the step-up",
                    ));
                }
                (None, key)
            }
        };
        let mut resp = crate::response::generic(StatusCode::FOUND, "");
        let h = resp.headers_mut();
        h.insert(header::LOCATION, header_value(&txn.return_to)?);
        h.append(
            header::SET_COOKIE,
            header_value(&cookie::clear(LOGIN_COOKIE))?,
        );
        if let Some(c) = set_cookie {
            h.append(header::SET_COOKIE, header_value(&c)?);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok((
            resp,
            format!(
                "session {} for `{}`",
                session_key.to_hex().get(..12).unwrap_or(""),
                escape(&subject)
            ),
        ))
    }

    async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<portcullis_token::VerifiedToken, (&'static str, String)> {
        let v = verify_provider_id_token(&self.keys, &self.rules, &self.oidc.client_id, id_token)
            .await
            .map_err(|r| (r.code, r.detail))?;
        let got = v.claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !crate::https::ct_eq(got.as_bytes(), nonce.as_bytes()) {
            return Err((
                "login_nonce_mismatch",
                "the ID token's `nonce` is not the login's".into(),
            ));
        }
        Ok(v)
    }

    /// Refuses a logout another site started: any page can link to
    /// `/.portcullis/logout`, and the `SameSite=Lax` cookie goes along with
    /// a top-level GET. A browser says where a request comes from with
    /// `Sec-Fetch-Site` and (on POST and most cross-site requests)
    /// `Origin`; a request with neither (an older browser following a
    /// link, a script) is accepted. `authority` is the request's host and
    /// port as sent.
    pub(crate) fn check_logout_origin(
        &self,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<(), Refusal> {
        let refuse = |detail: &str| {
            Err(Refusal::deny(
                StatusCode::FORBIDDEN,
                "logout_cross_site",
                detail.to_owned(),
            ))
        };
        let mut fetch_site = headers.get_all("sec-fetch-site").iter();
        match (fetch_site.next(), fetch_site.next()) {
            (_, Some(_)) => return refuse("more than one `sec-fetch-site` header"),
            (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"cross-site") => {
                return refuse("a logout started by another site (`sec-fetch-site: cross-site`)")
            }
            _ => {}
        }
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (None, _) => return Ok(()),
            (Some(_), Some(_)) => return refuse("more than one `origin` header"),
            (Some(o), None) => o.as_bytes(),
        };
        let own = |scheme_authority: Option<String>| {
            scheme_authority.is_some_and(|o| o.as_bytes().eq_ignore_ascii_case(origin))
        };
        let configured = self
            .oidc
            .redirect_uri
            .authority()
            .map(|a| format!("https://{a}"));
        if own(authority.map(|a| format!("https://{a}"))) || own(configured) {
            return Ok(());
        }
        refuse(&format!(
            "a logout from another origin `{}`",
            escape(&String::from_utf8_lossy(origin))
        ))
    }

    /// `/.portcullis/logout`: revokes the session (everywhere, it is in the
    /// shared store), clears the cookie and ends the provider's session.
    /// When the store fails the answer is a 503 that still clears the
    /// cookie: the browser's side of the session ends; the server-side
    /// revocation did not happen and is logged as such.
    pub(crate) async fn logout(
        &self,
        headers: &HeaderMap,
    ) -> Result<(http::Response<crate::upstream::Body>, String), Refusal> {
        let mut note = "no session".to_owned();
        if let Some(id) =
            cookie::get(headers, &self.sessions.cookie_name).and_then(SessionId::from_cookie)
        {
            let key = id.key();
            let short = key.to_hex().get(..12).unwrap_or("").to_owned();
            if let Err(e) = self.store.revoke(&key).await {
                tracing::error!(
                    session = %short,
                    reason = e.reason(),
                    "logout: the session could not be revoked in the store; the cookie is cleared, \
                     the session itself stays valid until it is revoked or expires"
                );
                let mut r = store_refusal(e);
                r.detail = format!("logout of session {short} not revoked: {}", r.detail);
                r.headers.push((
                    header::SET_COOKIE,
                    header_value(&cookie::clear(&self.sessions.cookie_name))?,
                ));
                return Err(r);
            }
            note = format!("session {short} revoked");
        }
        let location = match self
            .provider
            .meta(&self.oidc.issuer)
            .await
            .ok()
            .and_then(|m| m.end_session_endpoint.clone())
        {
            Some(end) => {
                let mut params = vec![("client_id", self.oidc.client_id.as_str())];
                let post = self
                    .oidc
                    .post_logout_redirect_uri
                    .as_ref()
                    .map(ToString::to_string);
                if let Some(p) = &post {
                    params.push(("post_logout_redirect_uri", p));
                }
                let sep = if end.contains('?') { '&' } else { '?' };
                format!("{end}{sep}{}", provider::form_encode(&params))
            }
            None => "/".to_owned(),
        };
        let mut resp = crate::response::generic(StatusCode::FOUND, "");
        let h = resp.headers_mut();
        h.insert(header::LOCATION, header_value(&location)?);
        h.append(
            header::SET_COOKIE,
            header_value(&cookie::clear(&self.sessions.cookie_name))?,
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok((resp, note))
    }
}

fn store_refusal(e: portcullis_session::StoreError) -> Refusal {
    let mut r = Refusal::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "session_store",
        format!("{}: {e}", e.reason()),
    );
    r.store_reason = Some(e.reason());
    r
}

fn header_value(s: &str) -> Result<HeaderValue, Refusal> {
    HeaderValue::from_str(s).map_err(|_| {
        Refusal::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "bad header value",
        )
    })
}

/// The first of `names` that `query` holds more than once (after
/// decoding the parameter names).
fn repeated_param(query: &str, names: &[&'static str]) -> Option<&'static str> {
    let mut seen = vec![false; names.len()];
    for pair in query.split('&') {
        let raw = pair.split_once('=').map_or(pair, |(k, _)| k);
        let Ok(key) = portcullis_http_guard::form_decode(raw) else {
            continue;
        };
        for (name, seen) in names.iter().zip(seen.iter_mut()) {
            if key == *name {
                if *seen {
                    return Some(name);
                }
                *seen = true;
            }
        }
    }
    None
}

/// Only a path on this gateway: one leading `/`, no scheme or authority.
fn safe_return_to(p: &str) -> String {
    if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() <= 2048 {
        p.to_owned()
    } else {
        "/".to_owned()
    }
}

fn escape(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// Whether a request prefers HTML (a browser navigating) over an API answer.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Why an ID token of the provider was not accepted.
#[derive(Debug)]
pub(crate) struct IdTokenRefusal {
    pub(crate) code: &'static str,
    pub(crate) detail: String,
    /// The token may be sound and the gateway unable to tell now: the
    /// provider's keys are unavailable or do not hold its key yet, or the
    /// clocks disagree on its time claims.
    pub(crate) transient: bool,
}

impl IdTokenRefusal {
    fn new(code: &'static str, detail: impl Into<String>, transient: bool) -> Self {
        Self {
            code,
            detail: detail.into(),
            transient,
        }
    }
}

/// Verifies an ID token of the provider: its signature with the
/// provider's keys (fetched again once for an unknown key id), `iss`,
/// `aud`, the time claims, and `azp`. The `nonce` is the caller's to check
/// (a login's; a refreshed ID token has none to compare).
pub(crate) async fn verify_provider_id_token(
    keys: &KeySource,
    rules: &IssuerRules,
    client_id: &str,
    id_token: &str,
) -> Result<portcullis_token::VerifiedToken, IdTokenRefusal> {
    use portcullis_token::TokenError as E;
    let bad = |e: E| {
        let transient = matches!(
            e,
            E::UnknownKid(_) | E::Expired { .. } | E::NotYetValid { .. } | E::IssuedInFuture { .. }
        );
        IdTokenRefusal::new(
            "login_id_token_invalid",
            format!("{}: {e}", e.reason()),
            transient,
        )
    };
    let current = keys
        .current()
        .map_err(|e| IdTokenRefusal::new("login_keys_unavailable", e.to_string(), true))?;
    let v = match portcullis_token::verify(id_token, rules, &current, now()) {
        Err(E::UnknownKid(_)) => {
            let fresh = keys
                .refresh_for_unknown_kid(current.version())
                .await
                .ok_or_else(|| {
                    IdTokenRefusal::new("login_id_token_invalid", "unknown key id", true)
                })?;
            portcullis_token::verify(id_token, rules, &fresh, now()).map_err(bad)?
        }
        other => other.map_err(bad)?,
    };
    // OIDC Core 3.1.3.7: with several audiences azp must be us; when
    // present it must be us anyway.
    match v.claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != client_id => {
            return Err(IdTokenRefusal::new(
                "login_azp_mismatch",
                "the ID token's `azp` is another client",
                false,
            ))
        }
        None if v.audiences.len() > 1 => {
            return Err(IdTokenRefusal::new(
                "login_azp_missing",
                "an ID token for several audiences needs `azp`",
                false,
            ))
        }
        _ => {}
    }
    Ok(v)
}
