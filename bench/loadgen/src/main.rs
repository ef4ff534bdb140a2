//! `portcullis-loadgen`: see the library docs. Prints one JSON line per
//! result on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use portcullis_loadgen::headers::ExtraHeaders;
use portcullis_loadgen::tls::{KeyExchange, TlsFiles};
use portcullis_loadgen::{check_bound, run, target, MAX_THREADS};

#[derive(Parser)]
#[command(
    name = "portcullis-loadgen",
    about = "mTLS HTTP/1.1 load generator for https://127.0.0.1 targets"
)]
struct Args {
    /// Target, `https://127.0.0.1:PORT/path` (no other host is accepted).
    #[arg(long)]
    url: String,
    /// PEM trust anchor for the server certificate.
    #[arg(long)]
    ca: PathBuf,
    /// PEM client certificate chain.
    #[arg(long)]
    cert: PathBuf,
    /// PEM client private key.
    #[arg(long)]
    key: PathBuf,
    /// TLS server name, also sent as the `Host` header with the port.
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// Concurrent connections (keep-alive mode) or loops (handshake mode).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds to run (keep-alive and handshake mode).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Measure full handshakes: a new connection and one request per iteration.
    #[arg(long, conflicts_with = "idle")]
    handshakes: bool,
    /// Idle mode: open this many connections, one request each, then hold them.
    #[arg(long)]
    idle: Option<usize>,
    /// Seconds to hold the idle connections open.
    #[arg(long, default_value_t = 30, requires = "idle")]
    hold: u64,
    /// Runtime worker threads; 1 runs everything on the calling thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Key exchange groups to offer.
    #[arg(long, value_enum, default_value_t = KeyExchange::Default)]
    kx: KeyExchange,
    /// Extra header on every request, `NAME:VALUE` (repeatable), e.g.
    /// `authorization: Bearer <token>`.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Header whose value is the next non-empty line of FILE on each
    /// request (round robin), e.g. many distinct tokens.
    #[arg(long, value_name = "NAME:FILE")]
    rotate_header: Option<String>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let a = Args::parse();
    let threads = check_bound("threads", a.threads, 1, MAX_THREADS)?;
    let target = target::parse_target(&a.url, &a.sni)?;
    let headers = ExtraHeaders::from_args(&a.headers, a.rotate_header.as_deref())?;
    let tls = portcullis_loadgen::tls::client_config(
        TlsFiles {
            ca: &a.ca,
            cert: &a.cert,
            key: &a.key,
        },
        a.kx,
    )?;
    let (connections, duration) = match a.idle {
        Some(n) => (n, Duration::from_secs(a.hold)),
        None => (a.connections, Duration::from_secs(a.duration)),
    };
    let spec = run::Spec {
        target,
        tls,
        connections,
        duration,
        headers: Arc::new(headers),
    };
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    rt.block_on(async {
        if a.idle.is_some() {
            let outcome = run::idle(&spec, |opened| {
                // The benchmark script reads the server's memory when
                // this line appears.
                println!("{}", opened.to_json());
            })
            .await?;
            println!(
                "{{\"mode\":\"idle_done\",\"held\":{},\"still_open\":{}}}",
                outcome.opened.requests, outcome.still_open
            );
        } else if a.handshakes {
            println!("{}", run::handshakes(&spec).await?.to_json());
        } else {
            println!("{}", run::keepalive(&spec).await?.to_json());
        }
        Ok::<_, anyhow::Error>(())
    })
}
