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
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = a.workers {
        b.worker_threads(n.max(1));
    }
    let rt = b.build()?;
    rt.block_on(portcullis_gateway::run(&a.config, a.ready_file.as_deref()))?;
    Ok(ExitCode::SUCCESS)
}
