use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Validate a configuration file (and the policy it names) without starting anything.
    Check { file: PathBuf },
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    match c {
        Cmd::Check { file } => {
            let config = match portcullis_config::Config::load(&file) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            // With signed bundles the policy is whatever bundle verifies at
            // run time; `portcullis bundle verify` checks a bundle.
            let policy = if config.policy.bundle.is_some() {
                None
            } else {
                match portcullis_config::load_policy(&config.policy.path, &config.routes) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            };
            println!("{}: ok", file.display());
            for l in &config.listeners {
                println!(
                    "  listener {} on {} (client_auth {:?}, {} CA certificate(s), {} CRL(s))",
                    l.name,
                    l.bind,
                    l.tls.client_auth.mode,
                    l.tls.client_auth.roots.len(),
                    l.tls.client_auth.crls.len()
                );
            }
            for r in &config.routes {
                println!(
                    "  route {} host={} prefix={} -> {}://{}",
                    r.name,
                    r.host.as_deref().unwrap_or("*"),
                    r.path_prefix,
                    r.upstream.scheme,
                    r.upstream.authority
                );
            }
            if let Some(p) = &policy {
                for warning in portcullis_config::policy_warnings(&config, &p.policy) {
                    println!("  warning: {warning}");
                }
            }
            match (&policy, &config.policy.bundle) {
                (Some(policy), _) => println!(
                    "  policy {} revision {} ({} rules, sha256 {})",
                    config.policy.path.display(),
                    policy.policy.revision(),
                    policy.policy.rule_count(),
                    policy.sha256
                ),
                (None, Some(b)) => println!(
                    "  policy from signed bundles at {:?} (trust root {}, state {}); check a bundle with `portcullis bundle verify`",
                    b.location,
                    b.trust_root.display(),
                    b.state_dir.display()
                ),
                (None, None) => {}
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
