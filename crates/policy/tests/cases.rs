//! Runs every test file in `tests/cases/*.yaml` against the policy it names.

use std::fs;
use std::path::Path;

use portcullis_policy::testing::{self, TestFile};
use portcullis_policy::Policy;

#[test]
fn yaml_cases_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the case files in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let tests = TestFile::from_yaml(&fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let policy_path = file.parent().unwrap().join(&tests.policy);
        let policy = Policy::from_yaml(&fs::read_to_string(&policy_path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", policy_path.display()));
        let report = testing::run(&policy, &tests);
        total += report.cases.len();
        for case in report.cases.iter().filter(|c| !c.passed) {
            failures.push(format!(
                "{}: {}: {}",
                file.display(),
                case.name,
                case.message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(total >= 50, "only {total} cases ran");
}
