use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use portcullis_policy::input::RequestInput;
use portcullis_policy::testing::{self, TestFile};
use portcullis_policy::Policy;

/// Exit code of `policy eval` for a deny decision.
const EXIT_DENY: u8 = 2;
/// Largest policy, input or test file read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(clap::Subcommand)]
pub(crate) enum Cmd {
    /// Parse and validate a policy; print its roles and effective permissions.
    Check {
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate one request (JSON or YAML) and print the decision with its
    /// explanation as JSON. Exit code 0: allow, 2: deny.
    Eval {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        input: PathBuf,
    },
    /// Run the YAML test files in DIR (or one file); prints `N passed, M failed`.
    Test { dir: PathBuf },
}

fn read(path: &Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        anyhow::bail!("`{}` is larger than {MAX_FILE_BYTES} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    Policy::from_yaml(&read(path)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub(crate) fn run(c: Cmd) -> anyhow::Result<ExitCode> {
    match c {
        Cmd::Check { file, json } => {
            let policy = match load_policy(&file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let summary = policy.summary();
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{}: ok, revision {}, {} rules",
                    file.display(),
                    policy.revision(),
                    policy.rule_count()
                );
                print_summary(&summary);
            }
            if !json {
                for warning in policy.warnings() {
                    println!("warning: {warning}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval { policy, input } => {
            let policy = load_policy(&policy)?;
            let text = read(&input)?;
            let parsed = if input.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                RequestInput::from_yaml(&text)
            } else {
                RequestInput::from_json(&text)
            };
            let req = parsed
                .and_then(|r| r.to_request(Some(jiff::Timestamp::now())))
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let decision = policy.evaluate(&req.as_request());
            println!("{}", serde_json::to_string_pretty(&decision)?);
            Ok(if decision.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DENY)
            })
        }
        Cmd::Test { dir } => {
            let files = test_files(&dir)?;
            if files.is_empty() {
                anyhow::bail!("no test files (*.yaml, *.yml) in `{}`", dir.display());
            }
            let (mut passed, mut failed) = (0usize, 0usize);
            for f in files {
                match run_file(&f) {
                    Ok(report) => {
                        for c in &report.cases {
                            if c.passed {
                                println!("ok   {}: {}", f.display(), c.name);
                            } else {
                                println!("FAIL {}: {}: {}", f.display(), c.name, c.message);
                            }
                        }
                        passed += report.passed;
                        failed += report.failed;
                    }
                    Err(e) => {
                        println!("FAIL {}: {e:#}", f.display());
                        failed += 1;
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn test_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn run_file(path: &Path) -> anyhow::Result<testing::Report> {
    let file = TestFile::from_yaml(&read(path)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let policy_path = base.join(&file.policy);
    let policy = load_policy(&policy_path)?;
    Ok(testing::run(&policy, &file))
}

fn print_summary(s: &portcullis_policy::Summary) {
    println!("routes: {}", s.routes.join(", "));
    println!("roles (effective permissions after inheritance):");
    for r in &s.roles {
        println!("  {}", r.name);
        if !r.inherits.is_empty() {
            println!("    inherits: {}", r.inherits.join(", "));
        }
        println!("    effective roles: {}", r.effective_roles.join(", "));
        println!(
            "    allow: {}",
            if r.allow.is_empty() {
                "-".to_owned()
            } else {
                r.allow.join(", ")
            }
        );
        println!(
            "    deny: {}",
            if r.deny.is_empty() {
                "-".to_owned()
            } else {
                r.deny.join(", ")
            }
        );
    }
    if !s.deny_all.is_empty() {
        println!("deny rules for every principal: {}", s.deny_all.join(", "));
    }
    println!("rules:");
    for r in &s.rules {
        let who = if r.roles.is_empty() {
            "everyone".to_owned()
        } else {
            r.roles.join(",")
        };
        let when = if r.conditions.is_empty() {
            String::new()
        } else {
            format!(" when {}", r.conditions.join(" and "))
        };
        println!(
            "  {:<5} {:<24} {} {} {} for {who}{when}",
            r.effect,
            r.id,
            r.routes.join(","),
            r.methods.join(","),
            r.path
        );
    }
}
