//! The `portcullis` command: runs the gateway and its tooling.
//! One module per subcommand under `command/`.

mod command;

/// mimalloc instead of the system allocator: a proxied request makes a few
/// allocations larger than 1 KiB (HTTP read buffers, header maps, request
/// futures) among dozens of small ones, a pattern on which glibc's malloc
/// spends much of its time consolidating free lists; frees from the audit
/// writer thread of records made on a worker are cheap in mimalloc too.
/// Through `portcullis_alloc`, which spares mimalloc its aligned slow
/// path; see docs/benchmarks.md ("Allocator").
#[global_allocator]
static GLOBAL: portcullis_alloc::Mimalloc = portcullis_alloc::Mimalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Zero-trust access gateway: mTLS identity, default-deny policy, safe forwarding, audit"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `portcullis=debug`.
    #[arg(long, global = true, env = "PORTCULLIS_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run(command::run::Args),
    /// Configuration tools.
    #[command(subcommand)]
    Config(command::config::Cmd),
    /// Policy tools: check, eval, test.
    #[command(subcommand)]
    Policy(command::policy::Cmd),
    /// Development PKI: a root and intermediate CA, and certificates.
    #[command(subcommand)]
    Pki(command::pki::Cmd),
    /// Create a working demo (CA, certificates, config, policy) and run it.
    Quickstart(command::quickstart::Args),
    /// Log in at an OpenID provider (authorization code + PKCE, or device grant) and store the tokens.
    Login(command::login::LoginArgs),
    /// Print a fresh access token of the stored login (refreshing it if needed).
    Token(command::login::TokenArgs),
    /// Forget a stored login.
    Logout(command::login::LogoutArgs),
    /// Browser sessions of a running gateway: list and revoke (admin API).
    #[command(subcommand)]
    Session(command::session::Cmd),
    /// Signed policy bundles: build, sign, verify, inspect, root-sign.
    #[command(subcommand)]
    Bundle(command::bundle::Cmd),
    /// Bundle signing keys: generate.
    #[command(subcommand)]
    Keys(command::keys::Cmd),
}

/// Exit status of a tool whose reader went away (128 + SIGPIPE), as a
/// shell reports it for `cat`.
const EXIT_BROKEN_PIPE: i32 = 141;

/// `portcullis policy check … | head` closes the command's stdout early:
/// that is the reader's choice, not a failure. Rust ignores SIGPIPE, so
/// `println!` panics on the closed pipe instead; that panic ends the
/// command quietly with the status a shell would report.
fn exit_quietly_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout")
            && message.to_ascii_lowercase().contains("broken pipe")
        {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_broken_stdout();
    let cli = Cli::parse();
    if let Err(e) = portcullis_telemetry::init_tracing(&cli.log) {
        eprintln!("error: --log: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(a) => command::run::run(a),
        Command::Config(c) => command::config::run(c),
        Command::Policy(c) => command::policy::run(c),
        Command::Pki(c) => command::pki::run(c),
        Command::Quickstart(a) => command::quickstart::run(a),
        Command::Login(a) => command::login::run_login(a),
        Command::Token(a) => command::login::run_token(a),
        Command::Logout(a) => command::login::run_logout(a),
        Command::Session(c) => command::session::run(c),
        Command::Bundle(c) => command::bundle::run(c),
        Command::Keys(c) => command::keys::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
