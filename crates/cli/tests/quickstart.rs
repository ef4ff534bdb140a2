//! The README's quickstart: `portcullis quickstart --demo` makes a PKI,
//! config and policy, runs the gateway and the demo requests, and exits 0
//! only if every outcome is the expected one.
mod common;

#[test]
fn quickstart_demo_outcomes_are_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["quickstart", "--demo", "--dir"])
        .arg(dir.path().join("qs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all outcomes as expected"), "{stdout}");
    assert_eq!(
        stdout.matches("\nok   ").count() + usize::from(stdout.starts_with("ok   ")),
        5,
        "{stdout}"
    );
    for f in [
        "pki/ca-bundle.pem",
        "pki/server.pem",
        "pki/reader.key",
        "pki/writer.pem",
        "portcullis.yaml",
        "policy.yaml",
        "audit.log",
    ] {
        assert!(dir.path().join("qs").join(f).is_file(), "{f} missing");
    }
    // Every demo request that reached HTTP left one audit record.
    let audit = std::fs::read_to_string(dir.path().join("qs/audit.log")).unwrap();
    let decisions: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let http: Vec<_> = decisions.iter().filter(|d| d["method"] != "-").collect();
    assert_eq!(http.len(), 4, "{audit}");
    assert_eq!(http.iter().filter(|d| d["decision"] == "allow").count(), 2);
    assert_eq!(http.iter().filter(|d| d["decision"] == "deny").count(), 2);
    // The refused handshake is audited too.
    assert!(
        decisions.iter().any(|d| d["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no_client_cert")),
        "{audit}"
    );
}
