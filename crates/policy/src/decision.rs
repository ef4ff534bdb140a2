//! The outcome of one evaluation, with its explanation.

use std::fmt::Write as _;

use serde::ser::SerializeMap;

use crate::name::{quoted, Name};

/// Why a request was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An allow rule matched and no deny rule did.
    Allow,
    /// A deny rule matched; deny rules always win.
    ExplicitDeny,
    /// The principal is anonymous or no binding gives it a role.
    NoRoles,
    /// No allow rule matches the route, method and path.
    NoMatchingRule,
    /// Allow rules match the route, method and path, but none names one of
    /// the principal's roles.
    RoleNotPermitted,
    /// An allow rule for the principal's roles matched, but one of its
    /// conditions did not hold.
    ConditionFailed,
    /// The request path is not normalised (see `docs/policy.md`).
    InvalidPath,
    /// The principal's token has a claim the policy reads by a dotted
    /// path both as a top-level name and nested: which one the issuer
    /// meant cannot be told, so the request is denied.
    AmbiguousClaim,
}

impl Reason {
    /// The stable code for logs, metrics and test files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::ExplicitDeny => "explicit_deny",
            Self::NoRoles => "no_roles",
            Self::NoMatchingRule => "no_matching_rule",
            Self::RoleNotPermitted => "role_not_permitted",
            Self::ConditionFailed => "condition_failed",
            Self::InvalidPath => "invalid_path",
            Self::AmbiguousClaim => "ambiguous_claim",
        }
    }

    /// Every reason, for validating test files.
    pub const ALL: [Reason; 8] = [
        Self::Allow,
        Self::ExplicitDeny,
        Self::NoRoles,
        Self::NoMatchingRule,
        Self::RoleNotPermitted,
        Self::ConditionFailed,
        Self::InvalidPath,
        Self::AmbiguousClaim,
    ];

    /// Parses a code written by [`Reason::as_str`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

/// For `condition_failed`: which condition of the named rule did not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedCondition {
    /// Key path of the condition in the rule, e.g. `when.equal.tenant`.
    pub condition: String,
    /// Why it did not hold, e.g. the values compared.
    pub detail: String,
}

/// Captured path parameters, serialised as a map.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Vec<(Name, String)>);

impl serde::Serialize for Params {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// An access decision. Denied unless an allow rule matched and no deny
/// rule did; it names the rule and carries the principal's effective roles
/// and the policy revision, so it can be logged and audited on its own.
#[derive(serde::Serialize, Clone, Debug)]
pub struct Decision {
    allowed: bool,
    reason: Reason,
    /// The allow rule, the deny rule, or for `condition_failed` the allow
    /// rule whose condition failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<FailedCondition>,
    /// Path parameters captured by the allow rule.
    #[serde(skip_serializing_if = "params_empty")]
    params: Params,
    /// The principal's effective roles, sorted by name.
    roles: Vec<Name>,
    revision: Name,
}

fn params_empty(p: &Params) -> bool {
    p.0.is_empty()
}

impl Decision {
    pub(crate) fn new(reason: Reason, roles: Vec<Name>, revision: Name) -> Self {
        Self {
            allowed: reason == Reason::Allow,
            reason,
            rule: None,
            failed: None,
            params: Params::default(),
            roles,
            revision,
        }
    }

    pub(crate) fn with_rule(mut self, rule: Name) -> Self {
        self.rule = Some(rule);
        self
    }

    pub(crate) fn with_params(mut self, params: Vec<(Name, String)>) -> Self {
        self.params = Params(params);
        self
    }

    pub(crate) fn with_failed(mut self, failed: FailedCondition) -> Self {
        self.failed = Some(failed);
        self
    }

    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// One of `allow`, `explicit_deny`, `no_roles`, `no_matching_rule`,
    /// `role_not_permitted`, `condition_failed`, `invalid_path`,
    /// `ambiguous_claim`.
    pub fn reason_code(&self) -> &'static str {
        self.reason.as_str()
    }

    /// The rule the decision names: the allow rule (`allow`), the deny rule
    /// (`explicit_deny`) or the first allow rule whose condition failed
    /// (`condition_failed`); `None` for the other reasons.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_ref().map(Name::as_str)
    }

    /// [`Self::rule`], shared with the policy: no copy of the name.
    pub fn rule_shared(&self) -> Option<std::sync::Arc<str>> {
        self.rule.as_ref().map(Name::shared)
    }

    /// For `condition_failed`: which condition failed and why.
    pub fn failed_condition(&self) -> Option<&FailedCondition> {
        self.failed.as_ref()
    }

    /// Path parameters captured by the allow rule, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The principal's effective roles after inheritance, sorted by name.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(Name::as_str)
    }

    /// The revision of the policy that decided.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// One line for logs and audit records; request values are quoted with
    /// control characters escaped.
    pub fn explain(&self) -> String {
        let mut s = String::with_capacity(128);
        let rule = self.rule.as_deref().map(quoted).unwrap_or_default();
        match self.reason {
            Reason::Allow => {
                let _ = write!(s, "allow by rule {rule}");
                if !self.params.0.is_empty() {
                    s.push_str(" with ");
                    for (i, (k, v)) in self.params.0.iter().enumerate() {
                        if i > 0 {
                            s.push_str(", ");
                        }
                        let _ = write!(s, "{k}={}", quoted(v));
                    }
                }
            }
            Reason::ExplicitDeny => {
                let _ = write!(s, "deny (explicit_deny) by rule {rule}");
            }
            Reason::NoRoles => s.push_str("deny (no_roles): the principal has no roles"),
            Reason::NoMatchingRule => {
                s.push_str("deny (no_matching_rule): no allow rule matches this route, method and path");
            }
            Reason::RoleNotPermitted => s.push_str(
                "deny (role_not_permitted): allow rules match this route, method and path, but none for the principal's roles",
            ),
            Reason::ConditionFailed => {
                let _ = write!(s, "deny (condition_failed): rule {rule}");
                if let Some(f) = &self.failed {
                    let _ = write!(s, " condition `{}` not met: {}", f.condition, f.detail);
                }
            }
            Reason::InvalidPath => s.push_str(
                "deny (invalid_path): the request path is not normalised (empty, `.` or `..` segment, `?`, `#` or control character)",
            ),
            Reason::AmbiguousClaim => {
                s.push_str("deny (ambiguous_claim)");
                if let Some(f) = &self.failed {
                    let _ = write!(s, ": {}", f.detail);
                }
            }
        }
        s.push_str("; roles [");
        for (i, r) in self.roles.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(r);
        }
        let _ = write!(s, "]; revision {}", quoted(&self.revision));
        s
    }
}
