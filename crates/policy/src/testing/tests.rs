use super::*;
use crate::test_util::load;

const POLICY: &str = r#"
revision: 7
roles: { reader: {} }
bindings: [{ role: reader, spiffe_id_prefix: "spiffe://example.org/ns/prod" }]
rules:
  - { id: read, effect: allow, roles: [reader], route: api, methods: [GET] }
  - { id: no-admin, effect: deny, route: api, path: "/admin/**" }
"#;

const TESTS: &str = r#"
policy: policy.yaml
time: "2026-12-04T10:00:00Z"
cases:
  - name: reader reads
    request: { principal: { spiffe_id: "spiffe://example.org/ns/prod/sa/web" }, route: api, method: GET, path: /x, source_ip: 10.0.0.1 }
    expect: allow
    rule: read
    reason: allow
  - name: admin denied
    request: { principal: { spiffe_id: "spiffe://example.org/ns/prod/sa/web" }, route: api, method: GET, path: /admin/x, source_ip: 10.0.0.1 }
    expect: deny
    rule: no-admin
    reason: explicit_deny
  - name: anonymous
    request: { route: api, method: GET, path: /x, source_ip: 10.0.0.1 }
    expect: deny
    reason: no_roles
"#;

#[test]
fn passing_file_reports_every_case() {
    let file = TestFile::from_yaml(TESTS).unwrap();
    assert_eq!(file.policy, "policy.yaml");
    let report = run(&load(POLICY), &file);
    assert!(report.is_success(), "{report:#?}");
    assert_eq!((report.passed, report.failed), (3, 0));
    assert_eq!(report.cases[0].name, "reader reads");
    assert!(report.cases[0].message.starts_with("allow by rule `read`"));
    serde_json::to_string(&report).unwrap();
}

#[test]
fn failures_say_what_differed() {
    let src = TESTS
        .replace(
            "expect: allow\n    rule: read\n    reason: allow",
            "expect: deny\n    rule: other",
        )
        .replace("reason: no_roles", "reason: no_matching_rule");
    let file = TestFile::from_yaml(&src).unwrap();
    let report = run(&load(POLICY), &file);
    assert!(!report.is_success());
    assert_eq!((report.passed, report.failed), (1, 2));
    let m = &report.cases[0].message;
    assert!(
        m.starts_with("expected deny, got allow; expected rule `other`, got `read` ("),
        "{m}"
    );
    let m = &report.cases[2].message;
    assert!(
        m.starts_with("expected reason `no_matching_rule`, got `no_roles`"),
        "{m}"
    );
}

#[test]
fn case_without_time_and_without_default_fails() {
    let src = TESTS.replace("time: \"2026-12-04T10:00:00Z\"\n", "");
    let file = TestFile::from_yaml(&src).unwrap();
    let report = run(&load(POLICY), &file);
    assert_eq!(report.failed, 3);
    assert_eq!(
        report.cases[0].message,
        "invalid request: request.time: missing; give the request a `time`"
    );
    assert!(report.cases[0].decision.is_none());
}

#[test]
fn invalid_request_fails_its_case_only() {
    let src = TESTS.replacen(
        "spiffe://example.org/ns/prod/sa/web",
        "spiffe://bad domain",
        1,
    );
    let file = TestFile::from_yaml(&src).unwrap();
    let report = run(&load(POLICY), &file);
    assert_eq!((report.passed, report.failed), (2, 1));
    assert!(report.cases[0]
        .message
        .starts_with("invalid request: request.principal.spiffe_id"));
}

#[test]
fn malformed_test_files_are_rejected() {
    let cases = [
        (
            TESTS.replace("reason: no_roles", "reason: nope"),
            "cases[2].reason",
        ),
        (
            TESTS.replace("reason: explicit_deny", "reason: allow"),
            "cases[1].reason",
        ),
        (
            TESTS.replace("name: anonymous", "name: admin denied"),
            "cases[2].name",
        ),
        (
            TESTS.replace("name: anonymous", "name: \" \""),
            "cases[2].name",
        ),
        (
            TESTS.replace("expect: allow", "expect: maybe"),
            "cases[0].expect",
        ),
        (
            TESTS.replace("    rule: read\n", "    rules: read\n"),
            "cases[0].rules",
        ),
        (
            TESTS.replace("policy: policy.yaml", "policy: \"\""),
            "policy",
        ),
        ("policy: p.yaml\ncases: []\n".to_owned(), "cases"),
        ("cases: []\n".to_owned(), ""),
    ];
    for (src, path) in cases {
        let err = TestFile::from_yaml(&src).unwrap_err();
        assert_eq!(err.path(), path, "{err}");
    }
    assert_eq!(
        TestFile::from_yaml("").unwrap_err().to_string(),
        "input is empty"
    );
}
