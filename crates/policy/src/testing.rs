//! Policy test files: requests with expected decisions, run against a
//! policy. Parsing and running only; the caller reads the files.
//!
//! ```yaml
//! policy: policy.yaml        # relative to the test file; the CLI reads it
//! time: "2026-12-04T10:00:00Z"   # optional default for cases without `time`
//! cases:
//!   - name: viewer reads its own tenant
//!     request: { principal: { spiffe_id: "spiffe://example.org/ns/acme/sa/web" },
//!                route: api, method: GET, path: /api/tenants/acme/x, source_ip: 10.1.2.3 }
//!     expect: allow          # allow | deny
//!     rule: tenant-read      # optional: expected Decision::rule
//!     reason: allow          # optional: expected reason code
//! ```

use std::collections::HashSet;

use jiff::Timestamp;

use crate::compile::parse_yaml;
use crate::decision::{Decision, Reason};
use crate::error::{PolicyError, PolicyErrorKind};
use crate::input::RequestInput;
use crate::policy::Policy;

/// Most cases in one test file: a generous suite, bounded memory.
pub const MAX_CASES: usize = 10_000;

/// Expected verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allow,
    Deny,
}

/// A parsed test file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The policy file, relative to the test file.
    pub policy: String,
    /// Default time for cases whose request has no `time`.
    #[serde(default)]
    pub time: Option<Timestamp>,
    pub cases: Vec<TestCase>,
}

/// One case: a request and what the policy must decide.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub request: RequestInput,
    pub expect: Expect,
    /// Expected [`Decision::rule`].
    #[serde(default)]
    pub rule: Option<String>,
    /// Expected [`Decision::reason_code`].
    #[serde(default)]
    pub reason: Option<String>,
}

impl TestFile {
    /// Parses a test file; rejects unknown fields, duplicate or empty case
    /// names, unknown reason codes and files without cases.
    pub fn from_yaml(src: &str) -> Result<TestFile, PolicyError> {
        let file: TestFile = parse_yaml(src)?;
        if file.policy.is_empty() {
            return Err(PolicyError::new("policy", PolicyErrorKind::EmptyValue));
        }
        if file.cases.is_empty() {
            return Err(PolicyError::new("cases", PolicyErrorKind::EmptyValue));
        }
        if file.cases.len() > MAX_CASES {
            return Err(PolicyError::new(
                "cases",
                PolicyErrorKind::TooMany {
                    what: "cases",
                    count: file.cases.len(),
                    max: MAX_CASES,
                },
            ));
        }
        let mut names = HashSet::new();
        for (i, case) in file.cases.iter().enumerate() {
            if case.name.trim().is_empty() {
                return Err(PolicyError::new(
                    format!("cases[{i}].name"),
                    PolicyErrorKind::EmptyValue,
                ));
            }
            if !names.insert(case.name.as_str()) {
                return Err(PolicyError::new(
                    format!("cases[{i}].name"),
                    PolicyErrorKind::Invalid("duplicate case name"),
                ));
            }
            if let Some(code) = &case.reason {
                let Some(reason) = Reason::from_code(code) else {
                    return Err(PolicyError::new(
                        format!("cases[{i}].reason"),
                        PolicyErrorKind::Invalid(
                            "unknown reason: expected allow, explicit_deny, no_roles, no_matching_rule, role_not_permitted, condition_failed or invalid_path",
                        ),
                    ));
                };
                if (reason == Reason::Allow) != (case.expect == Expect::Allow) {
                    return Err(PolicyError::new(
                        format!("cases[{i}].reason"),
                        PolicyErrorKind::Invalid("contradicts `expect`"),
                    ));
                }
            }
        }
        Ok(file)
    }
}

/// Outcome of one case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What differed, or the decision's explanation when the case passed.
    pub message: String,
    /// `None` when the request could not be built.
    pub decision: Option<Decision>,
}

/// Outcome of a test file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }
}

/// Runs every case of `file` against `policy`.
pub fn run(policy: &Policy, file: &TestFile) -> Report {
    let cases: Vec<CaseResult> = file
        .cases
        .iter()
        .map(|case| run_case(policy, case, file.time))
        .collect();
    let passed = cases.iter().filter(|c| c.passed).count();
    Report {
        failed: cases.len() - passed,
        passed,
        cases,
    }
}

fn run_case(policy: &Policy, case: &TestCase, default_time: Option<Timestamp>) -> CaseResult {
    let req = match case.request.to_request(default_time) {
        Ok(r) => r,
        Err(e) => {
            return CaseResult {
                name: case.name.clone(),
                passed: false,
                message: format!("invalid request: request.{e}"),
                decision: None,
            }
        }
    };
    let decision = policy.evaluate(&req.as_request());
    let mut problems = Vec::new();
    let got = if decision.is_allowed() {
        "allow"
    } else {
        "deny"
    };
    let want = match case.expect {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    };
    if got != want {
        problems.push(format!("expected {want}, got {got}"));
    }
    if let Some(rule) = &case.rule {
        if decision.rule() != Some(rule.as_str()) {
            problems.push(format!(
                "expected rule `{rule}`, got {}",
                decision
                    .rule()
                    .map_or_else(|| "none".to_owned(), |r| format!("`{r}`"))
            ));
        }
    }
    if let Some(reason) = &case.reason {
        if decision.reason_code() != reason {
            problems.push(format!(
                "expected reason `{reason}`, got `{}`",
                decision.reason_code()
            ));
        }
    }
    let passed = problems.is_empty();
    let message = if passed {
        decision.explain()
    } else {
        format!("{} ({})", problems.join("; "), decision.explain())
    };
    CaseResult {
        name: case.name.clone(),
        passed,
        message,
        decision: Some(decision),
    }
}

#[cfg(test)]
mod tests;
