//! Keeps `examples/policy` honest: the example policy loads and every case
//! in its test file passes.

use std::fs;
use std::path::Path;

use portcullis_policy::testing::{self, TestFile};
use portcullis_policy::Policy;

#[test]
fn example_policy_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy");
    let test_path = root.join("tests/example.yaml");
    let tests = TestFile::from_yaml(&fs::read_to_string(&test_path).unwrap()).unwrap();
    assert_eq!(tests.policy, "../policy.yaml");
    let policy_path = test_path.parent().unwrap().join(&tests.policy);
    let policy = Policy::from_yaml(&fs::read_to_string(policy_path).unwrap()).unwrap();
    assert_eq!(policy.revision(), "2026-12-04.1");
    assert_eq!(policy.route_names().collect::<Vec<_>>(), ["admin", "api"]);

    let report = testing::run(&policy, &tests);
    let failures: Vec<String> = report
        .cases
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(report.passed >= 8);

    let summary = policy.summary();
    let admin = summary.roles.iter().find(|r| r.name == "admin").unwrap();
    assert_eq!(admin.effective_roles, ["admin", "api-reader", "api-writer"]);
}

#[test]
fn token_example_policy_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy-tokens");
    let test_path = root.join("tests/tokens.yaml");
    let tests = TestFile::from_yaml(&fs::read_to_string(&test_path).unwrap()).unwrap();
    let policy_path = test_path.parent().unwrap().join(&tests.policy);
    let policy = Policy::from_yaml(&fs::read_to_string(policy_path).unwrap()).unwrap();
    let report = testing::run(&policy, &tests);
    let failures: Vec<String> = report
        .cases
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert_eq!(report.passed, 11);
}
