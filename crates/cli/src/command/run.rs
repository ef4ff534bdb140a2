use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Write the bound listener and admin addresses here (JSON) once the
    /// gateway accepts traffic.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

pub(crate) fn run(a: Args) -> anyhow::Result<ExitCode> {
    // One worker: a single-threaded event loop (like one nginx worker or
    // haproxy with `nbthread 1`), without work-stealing bookkeeping.
    let rt = match a.workers {
        Some(n) if n <= 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(n)
            .build()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(portcullis_gateway::run(&a.config, a.ready_file.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}
