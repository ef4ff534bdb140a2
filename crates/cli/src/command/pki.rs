use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use portcullis_identity::SpiffeId;
use portcullis_pki::{IssueRequest, Usage};

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Create a development root CA and intermediate CA in DIR.
    Init { dir: PathBuf },
    /// Issue a certificate from the intermediate CA in DIR.
    Issue(IssueArgs),
}

#[derive(clap::Args)]
pub(crate) struct IssueArgs {
    /// Directory made by `pki init`.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Output file name: writes NAME.pem (certificate + intermediate) and NAME.key.
    #[arg(long)]
    name: String,
    /// SPIFFE ID for a workload certificate (X.509-SVID).
    #[arg(long)]
    spiffe_id: Option<String>,
    /// DNS names (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// IP addresses (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// Subject common name (defaults to NAME).
    #[arg(long)]
    cn: Option<String>,
    /// Issue a server certificate (serverAuth) instead of a client one.
    #[arg(long)]
    server: bool,
    /// Validity in days.
    #[arg(long, default_value_t = 90)]
    days: u64,
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    match c {
        Cmd::Init { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
            let report = portcullis_pki::init_dir(&dir)?;
            for f in report.files() {
                println!("wrote {}", f.display());
            }
            println!(
                "trust anchor for clients and for `client_ca`: {}",
                report.ca_bundle.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Issue(a) => {
            let spiffe_id = a
                .spiffe_id
                .as_deref()
                .map(SpiffeId::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--spiffe-id: {e}"))?;
            let now = SystemTime::now();
            let req = IssueRequest {
                common_name: a.cn.unwrap_or_else(|| a.name.clone()),
                spiffe_id,
                dns: a.dns,
                ips: a.ip,
                usage: if a.server {
                    Usage::Server
                } else {
                    Usage::Client
                },
                not_after: now + Duration::from_secs(a.days.saturating_mul(86_400)),
                ..IssueRequest::default()
            };
            let report = portcullis_pki::issue_to_dir(&a.dir, &a.name, &req)?;
            println!("wrote {}", report.cert.display());
            println!("wrote {} (mode 0600)", report.key.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
