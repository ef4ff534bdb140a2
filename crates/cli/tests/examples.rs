//! The example gateway configuration in `examples/gateway/` is valid: the
//! PKI commands its header names make every file it needs, and
//! `config check` accepts it together with the example policy.
#![allow(clippy::unwrap_used, reason = "test helper outside #[test] functions")]

mod common;

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(common::bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "portcullis {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn example_gateway_config_checks_with_the_documented_pki_commands() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let tmp = tempfile::tempdir().unwrap();
    let gw = tmp.path().join("gateway");
    let policy = tmp.path().join("policy");
    std::fs::create_dir_all(&gw).unwrap();
    std::fs::create_dir_all(&policy).unwrap();
    let config = std::fs::read_to_string(examples.join("gateway/portcullis.yaml")).unwrap();
    std::fs::write(gw.join("portcullis.yaml"), &config).unwrap();
    std::fs::copy(
        examples.join("policy/policy.yaml"),
        policy.join("policy.yaml"),
    )
    .unwrap();

    // The commands in the file's header comment, run as written.
    let commands: Vec<Vec<String>> = config
        .lines()
        .filter_map(|l| l.strip_prefix("#   portcullis "))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        commands.len(),
        3,
        "the header documents pki init and two issues"
    );
    for c in &commands {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        run(&gw, &args);
    }
    let out = run(&gw, &["config", "check", "portcullis.yaml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("listener public on 127.0.0.1:8443"),
        "{stdout}"
    );
    assert!(stdout.contains("route admin"), "{stdout}");
}
