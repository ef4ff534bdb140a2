//! `portcullis session list|revoke`: the session admin API of a running
//! gateway (`/admin/sessions` on its admin listener), which needs the
//! admin token (`admin.token_file` in the gateway's configuration).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

/// Bound on one admin API call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (a listing of 10 000 sessions fits).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

#[derive(clap::Args)]
pub(crate) struct Common {
    /// The gateway's admin listener.
    #[arg(
        long,
        default_value = "http://127.0.0.1:9901",
        env = "PORTCULLIS_ADMIN_URL"
    )]
    admin: String,
    /// File holding the admin token (the gateway's `admin.token_file`).
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN_FILE")]
    token_file: PathBuf,
}

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// List sessions (no secrets: keys are hashes of the cookies).
    List {
        #[command(flatten)]
        common: Common,
        /// Only this user's sessions (`sub`).
        #[arg(long)]
        user: Option<String>,
        /// Print the JSON answer as is.
        #[arg(long)]
        json: bool,
    },
    /// Revoke sessions; takes effect on the next request on every instance.
    Revoke {
        #[command(flatten)]
        common: Common,
        /// One session, by the key `session list` shows.
        #[arg(long, conflicts_with_all = ["user", "thumbprint"])]
        session: Option<String>,
        /// Every session of this user (`sub`).
        #[arg(long)]
        user: Option<String>,
        /// Every session bound to this client certificate (SHA-256, hex).
        #[arg(long)]
        thumbprint: Option<String>,
    },
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match c {
            Cmd::List { common, user, json } => {
                let mut path = "/admin/sessions?limit=10000".to_owned();
                if let Some(u) = &user {
                    path.push_str("&user=");
                    path.push_str(&super::login::oauth::encode(u));
                }
                let answer = call(&common, http::Method::GET, &path, None).await?;
                if json {
                    println!("{answer}");
                    return Ok(ExitCode::SUCCESS);
                }
                let v: serde_json::Value = serde_json::from_str(&answer)?;
                let list = v
                    .get("sessions")
                    .and_then(serde_json::Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                println!(
                    "{:<16} {:<24} {:<8} {:<20} {:<20}",
                    "KEY", "USER", "REVOKED", "CREATED", "LAST SEEN"
                );
                for s in &list {
                    let field = |f: &str| s.get(f).cloned().unwrap_or_default();
                    let time = |f: &str| {
                        field(f)
                            .as_i64()
                            .and_then(|t| jiff::Timestamp::from_second(t).ok())
                            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default()
                    };
                    println!(
                        "{:<16} {:<24} {:<8} {:<20} {:<20}",
                        field("key").as_str().unwrap_or("").get(..16).unwrap_or(""),
                        field("subject").as_str().unwrap_or(""),
                        field("revoked").as_bool().unwrap_or(false),
                        time("created_at"),
                        time("last_seen"),
                    );
                }
                println!("{} session(s)", list.len());
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Revoke {
                common,
                session,
                user,
                thumbprint,
            } => {
                let body = match (session, user, thumbprint) {
                    (Some(k), None, None) => serde_json::json!({ "session": k }),
                    (None, u, t) if u.is_some() || t.is_some() => {
                        serde_json::json!({ "user": u, "thumbprint": t })
                    }
                    _ => anyhow::bail!("give --session, or --user and/or --thumbprint"),
                };
                let answer = call(
                    &common,
                    http::Method::POST,
                    "/admin/sessions/revoke",
                    Some(body.to_string()),
                )
                .await?;
                let v: serde_json::Value = serde_json::from_str(&answer)?;
                println!(
                    "revoked {} session(s)",
                    v.get("revoked")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn call(
    common: &Common,
    method: http::Method,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<String> {
    let token = Zeroizing::new(
        std::fs::read_to_string(&common.token_file)
            .map_err(|e| anyhow::anyhow!("--token-file `{}`: {e}", common.token_file.display()))?,
    );
    let token = token.trim_end_matches(['\n', '\r']);
    let base = common.admin.trim_end_matches('/');
    if !base.starts_with("http://") {
        anyhow::bail!("--admin: expected http://HOST:PORT of the admin listener");
    }
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|_| anyhow::anyhow!("--admin: `{}` is not a URL", common.admin))?;
    let auth = Zeroizing::new(format!("Bearer {token}"));
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::AUTHORIZATION, auth.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let fut = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            anyhow::bail!("the gateway answered {status}: {}", text.trim());
        }
        Ok(text)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, fut)
        .await
        .map_err(|_| {
            anyhow::anyhow!("no answer from `{}` within {ADMIN_TIMEOUT:?}", common.admin)
        })?
}
