//! `portcullis login`, `portcullis token` and `portcullis logout`: an
//! OAuth 2.1 public client for people at a terminal.
//!
//! `login` discovers the provider (`{issuer}/.well-known/openid-configuration`
//! over HTTPS; the document must name the same issuer), then runs the
//! authorization code flow with PKCE (S256 only) through a loopback
//! redirect on 127.0.0.1 (RFC 8252), or the device authorization grant
//! (RFC 8628) with `--device`, and stores the tokens with
//! [`token_store`](super::token_store). `token` prints a fresh access
//! token, refreshing it first when it expires within a minute. `logout`
//! forgets a login.
//!
//! Not done here: verifying token signatures (the gateway does that for
//! access tokens; the ID token is only read for `iss`, `aud`, `nonce` and
//! `sub`), confidential clients, DPoP, revocation at the provider, HTTP
//! proxies.

mod callback;
mod error;
mod https;
pub(crate) mod oauth;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(crate) use error::LoginError;
use https::{CaBundle, HttpsClient, HttpsUrl};
use oauth::{Metadata, Outcome, TokenResponse};

use super::token_store::{self, Secret, StoredLogin, TokenStore};

/// Scope asked for when `--scope` is not given.
pub(crate) const DEFAULT_SCOPE: &str = "openid offline_access";
/// Default bound on waiting for the person to log in.
pub(crate) const DEFAULT_LOGIN_TIMEOUT: &str = "300s";
/// Longest `--timeout` accepted (a device code rarely lives longer).
pub(crate) const MAX_LOGIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// `token` refreshes an access token that expires within this margin, so
/// the printed token outlives the request it is used for.
pub(crate) const REFRESH_MARGIN_SECS: u64 = 60;

#[derive(clap::Args)]
pub(crate) struct LoginArgs {
    /// Issuer URL of the OpenID provider (https), e.g. `https://id.example.com`.
    #[arg(long)]
    issuer: String,
    /// OAuth client id of this CLI (a public client) at the provider.
    #[arg(long)]
    client_id: String,
    /// Space-separated scopes to ask for.
    #[arg(long, default_value = DEFAULT_SCOPE)]
    scope: String,
    /// Resource indicator (RFC 8707): the API the access token is for.
    #[arg(long)]
    resource: Option<String>,
    /// PEM file of CA certificates to trust instead of the system's; its
    /// certificates are stored with the login for refreshes.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Do not open a browser; only print the URL.
    #[arg(long)]
    no_browser: bool,
    /// Use the device authorization grant (log in on another device).
    #[arg(long)]
    device: bool,
    /// Give up when the login is not completed within this time (`90s`, `5m`).
    #[arg(long, default_value = DEFAULT_LOGIN_TIMEOUT, value_parser = parse_timeout)]
    timeout: Duration,
}

#[derive(clap::Args)]
pub(crate) struct TokenArgs {
    /// Issuer of the login to use (default: the most recent login).
    #[arg(long)]
    issuer: Option<String>,
    /// Client id of the login to use.
    #[arg(long)]
    client_id: Option<String>,
    /// PEM file of CA certificates for the refresh (default: those stored at login).
    #[arg(long)]
    ca: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct LogoutArgs {
    /// Issuer of the login to forget (default: the most recent login).
    #[arg(long)]
    issuer: Option<String>,
    /// Client id of the login to forget.
    #[arg(long)]
    client_id: Option<String>,
    /// Forget every stored login.
    #[arg(long, conflicts_with_all = ["issuer", "client_id"])]
    all: bool,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = portcullis_config::parse_duration(s)?;
    if d.is_zero() || d > MAX_LOGIN_TIMEOUT {
        return Err(format!(
            "`{s}` must be above 0 and at most {}s",
            MAX_LOGIN_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

// ---------------------------------------------------------------- login

pub(crate) fn run_login(a: LoginArgs) -> anyhow::Result<ExitCode> {
    // Never a mode that only half-checks: every login names its client.
    if a.client_id.trim().is_empty() {
        anyhow::bail!("--client-id: must not be empty");
    }
    if a.issuer.trim().is_empty() {
        anyhow::bail!("--issuer: must not be empty");
    }
    let store = TokenStore::from_env()?;
    let sub = runtime()?.block_on(login(&a, &store))?;
    match sub {
        Some(sub) => eprintln!("Logged in to {} as `{sub}`.", a.issuer),
        None => eprintln!("Logged in to {}.", a.issuer),
    }
    Ok(ExitCode::SUCCESS)
}

async fn login(a: &LoginArgs, store: &TokenStore) -> Result<Option<String>, LoginError> {
    oauth::validate_issuer(&a.issuer)?;
    if let Some(r) = &a.resource {
        validate_resource(r)?;
    }
    // Read once: these certificates are trusted now and stored for the
    // refreshes, whatever the file holds later.
    let ca = a.ca.as_deref().map(CaBundle::read).transpose()?;
    // Redeeming a code spends it: nothing is sent to the provider before
    // it is certain the tokens can be stored (a lock left behind would
    // otherwise fail the login only at its end).
    store.check_writable().map_err(LoginError::NotStarted)?;
    let client = HttpsClient::new(ca.as_ref())?;
    let meta = oauth::discover(&client, &a.issuer).await?;
    let (tokens, nonce) = if a.device {
        (device_flow(a, &client, &meta).await?, None)
    } else {
        code_flow(a, &client, &meta).await?
    };
    let sub = match &tokens.id_token {
        Some(id) => oauth::check_id_token(id, &meta.issuer, &a.client_id, nonce.as_ref())?,
        None => None,
    };
    let now = token_store::unix_now();
    store.upsert(StoredLogin {
        issuer: meta.issuer.clone(),
        client_id: a.client_id.clone(),
        token_endpoint: meta.token_endpoint.as_str().to_owned(),
        expires_at: tokens.expires_in.map(|s| now.saturating_add(s)),
        scope: tokens.scope.clone().or_else(|| Some(a.scope.clone())),
        resource: a.resource.clone(),
        ca_pem: ca.as_ref().map(CaBundle::to_pem),
        ca: None,
        updated_at: now,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
    })?;
    Ok(sub)
}

/// RFC 8707 2: an absolute URI without a fragment.
fn validate_resource(r: &str) -> Result<(), LoginError> {
    let bad = |reason| LoginError::Url {
        url: error::printable(r),
        reason,
    };
    if r.contains('#') {
        return Err(bad("a resource indicator has no fragment"));
    }
    let uri: http::Uri = r.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(bad("a resource indicator is an absolute URI"));
    }
    Ok(())
}

/// The authorization code flow with PKCE through the loopback redirect.
/// Returns the tokens and the nonce sent.
async fn code_flow(
    a: &LoginArgs,
    client: &HttpsClient,
    meta: &Metadata,
) -> Result<(TokenResponse, Option<Secret>), LoginError> {
    let loopback = callback::Loopback::bind().await?;
    let redirect_uri = loopback.redirect_uri();
    let pkce = oauth::Pkce::new()?;
    let state = Secret::new(oauth::random_b64(oauth::STATE_BYTES)?.to_string());
    let openid = a.scope.split(' ').any(|s| s == "openid");
    let nonce = if openid {
        Some(Secret::new(
            oauth::random_b64(oauth::STATE_BYTES)?.to_string(),
        ))
    } else {
        None
    };
    let url = oauth::authorization_url(
        &meta.authorization_endpoint,
        &oauth::AuthRequest {
            client_id: &a.client_id,
            redirect_uri: &redirect_uri,
            scope: &a.scope,
            state: state.expose(),
            nonce: nonce.as_ref().map(Secret::expose),
            code_challenge: &pkce.challenge,
            resource: a.resource.as_deref(),
        },
    );
    eprintln!("Open this URL to log in: {url}");
    if !a.no_browser {
        open_browser(&url);
    }
    let code = loopback
        .wait(
            oauth::CallbackExpect {
                state,
                issuer: meta.issuer.clone(),
                iss_required: meta.iss_parameter_supported,
            },
            a.timeout,
        )
        .await?;
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", a.client_id.as_str()),
        ("code_verifier", pkce.verifier.expose()),
    ];
    if let Some(r) = &a.resource {
        pairs.push(("resource", r));
    }
    let tokens = oauth::token_request(client, &meta.token_endpoint, &pairs).await?;
    Ok((tokens, nonce))
}

/// The device authorization grant: print the code, poll the token endpoint.
async fn device_flow(
    a: &LoginArgs,
    client: &HttpsClient,
    meta: &Metadata,
) -> Result<TokenResponse, LoginError> {
    let endpoint = meta
        .device_authorization_endpoint
        .as_ref()
        .ok_or(LoginError::NoDeviceEndpoint)?;
    let mut pairs = vec![
        ("client_id", a.client_id.as_str()),
        ("scope", a.scope.as_str()),
    ];
    if let Some(r) = &a.resource {
        pairs.push(("resource", r));
    }
    let resp = client.post_form(endpoint, oauth::form(&pairs)).await?;
    let device: oauth::DeviceAuthorization = match oauth::parse_answer(endpoint, &resp)? {
        Outcome::Ok(d) => d,
        Outcome::Refused(e) => return Err(e.into_token_error()),
    };
    // Shown to the person: only https pages, printable text.
    let page = device
        .verification_uri_complete
        .as_deref()
        .unwrap_or(&device.verification_uri);
    let page = HttpsUrl::parse(page)?;
    eprintln!(
        "Open {} and enter code {}",
        page.as_str(),
        error::printable(&device.user_code)
    );
    if !a.no_browser {
        open_browser(page.as_str());
    }
    let lifetime = Duration::from_secs(device.expires_in).min(a.timeout);
    let deadline = Instant::now() + lifetime;
    let mut interval = oauth::first_interval(device.interval);
    loop {
        let wait = Duration::from_secs(interval);
        if Instant::now() + wait > deadline {
            return Err(LoginError::LoginTimeout(lifetime));
        }
        tokio::time::sleep(wait).await;
        let pairs = [
            ("grant_type", oauth::DEVICE_GRANT),
            ("device_code", device.device_code.expose()),
            ("client_id", a.client_id.as_str()),
        ];
        match oauth::token_request_outcome(client, &meta.token_endpoint, &pairs).await? {
            Outcome::Ok(tokens) => return Ok(tokens),
            Outcome::Refused(e) => interval = oauth::next_poll(interval, e)?,
        }
    }
}

/// Opens `url` in the desktop's browser; failure only prints a note.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reap the opener in the background; its exit status is not ours.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("note: cannot start `{opener}` ({e}); open the URL yourself"),
    }
}

// ---------------------------------------------------------------- token

const RELOGIN: &str = "run `portcullis login`";

pub(crate) fn run_token(a: TokenArgs) -> anyhow::Result<ExitCode> {
    let store = TokenStore::from_env()?;
    let token = runtime()?.block_on(fresh_token(&a, &store))?;
    println!("{}", token.expose());
    Ok(ExitCode::SUCCESS)
}

/// The stored access token, refreshed first if it expires within
/// [`REFRESH_MARGIN_SECS`].
async fn fresh_token(a: &TokenArgs, store: &TokenStore) -> anyhow::Result<Secret> {
    let pick = |logins: &[StoredLogin]| {
        token_store::select(logins, a.issuer.as_deref(), a.client_id.as_deref()).cloned()
    };
    let Some(login) = pick(&store.load()?) else {
        anyhow::bail!("no stored login{}; {RELOGIN}", describe_filter(a));
    };
    if is_fresh(&login, token_store::unix_now()) {
        return Ok(login.access_token);
    }
    // Refresh under the lock, re-reading first: another process may have
    // refreshed (and rotated the refresh token) meanwhile.
    let lock = store.lock()?;
    let Some(mut login) = pick(&store.load()?) else {
        anyhow::bail!("no stored login{}; {RELOGIN}", describe_filter(a));
    };
    if is_fresh(&login, token_store::unix_now()) {
        return Ok(login.access_token);
    }
    let Some(refresh_token) = login.refresh_token.clone() else {
        anyhow::bail!(
            "the access token for `{}` has expired and there is no refresh token; {RELOGIN}",
            login.issuer
        );
    };
    let (ca, migrate) = refresh_ca(a, &login)?;
    let client = HttpsClient::new(ca.as_ref())?;
    let endpoint = HttpsUrl::parse(&login.token_endpoint)?;
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", login.client_id.as_str()),
    ];
    if let Some(r) = &login.resource {
        pairs.push(("resource", r));
    }
    let tokens = match oauth::token_request(&client, &endpoint, &pairs).await {
        Ok(t) => t,
        Err(e @ LoginError::TokenEndpoint { .. }) => {
            anyhow::bail!("cannot refresh the access token: {e}; {RELOGIN}")
        }
        Err(e) => return Err(e.into()),
    };
    let now = token_store::unix_now();
    login.access_token = tokens.access_token;
    login.expires_at = tokens.expires_in.map(|s| now.saturating_add(s));
    // RFC 6749 6: a new refresh token replaces the old; none keeps it.
    if let Some(rt) = tokens.refresh_token {
        login.refresh_token = Some(rt);
    }
    if let Some(id) = tokens.id_token {
        login.id_token = Some(id);
    }
    if let Some(scope) = tokens.scope {
        login.scope = Some(scope);
    }
    if migrate {
        login.ca_pem = ca.as_ref().map(CaBundle::to_pem);
        login.ca = None;
    }
    login.updated_at = now;
    let token = login.access_token.clone();
    store.put(&lock, login)?;
    Ok(token)
}

/// The CA certificates a refresh trusts: `--ca` if given, else those
/// stored at login. A login stored by an older portcullis holds the CA
/// file's path instead: the file is read as it is now, and `true` says
/// its certificates are to be stored in place of the path.
fn refresh_ca(a: &TokenArgs, login: &StoredLogin) -> Result<(Option<CaBundle>, bool), LoginError> {
    if let Some(path) = &a.ca {
        return Ok((Some(CaBundle::read(path)?), false));
    }
    if let Some(pem) = &login.ca_pem {
        return Ok((Some(CaBundle::from_stored(pem)?), false));
    }
    match &login.ca {
        Some(path) => Ok((Some(CaBundle::read(path)?), true)),
        None => Ok((None, false)),
    }
}

/// Fresh: no known expiry, or more than the margin left.
fn is_fresh(login: &StoredLogin, now: u64) -> bool {
    login
        .expires_at
        .is_none_or(|exp| exp > now.saturating_add(REFRESH_MARGIN_SECS))
}

fn describe_filter(a: &TokenArgs) -> String {
    match (&a.issuer, &a.client_id) {
        (None, None) => String::new(),
        (i, c) => format!(
            " for{}{}",
            i.as_ref()
                .map(|i| format!(" issuer `{i}`"))
                .unwrap_or_default(),
            c.as_ref()
                .map(|c| format!(" client `{c}`"))
                .unwrap_or_default()
        ),
    }
}

// --------------------------------------------------------------- logout

pub(crate) fn run_logout(a: LogoutArgs) -> anyhow::Result<ExitCode> {
    let store = TokenStore::from_env()?;
    let removed = if a.all {
        store.remove(|_| true)?
    } else {
        let logins = store.load()?;
        let Some(target) =
            token_store::select(&logins, a.issuer.as_deref(), a.client_id.as_deref())
        else {
            eprintln!("No stored login to forget.");
            return Ok(ExitCode::SUCCESS);
        };
        let (issuer, client_id) = (target.issuer.clone(), target.client_id.clone());
        store.remove(|l| l.issuer == issuer && l.client_id == client_id)?
    };
    eprintln!("Forgot {removed} stored login(s).");
    Ok(ExitCode::SUCCESS)
}
