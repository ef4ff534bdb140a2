//! A serialisable overview of a policy: what each role may and may not do.

use crate::index::RoleIdx;
use crate::policy::Policy;
use crate::raw::Effect;

/// Overview of a policy, for `portcullis policy show` and reviews.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub revision: String,
    pub rule_count: usize,
    /// Routes the rules reference, sorted.
    pub routes: Vec<String>,
    /// Every role, sorted by name.
    pub roles: Vec<RoleSummary>,
    /// Deny rules without `roles`: they apply to every principal, anonymous
    /// ones included.
    pub deny_all: Vec<String>,
    /// Every rule, in file order.
    pub rules: Vec<RuleSummary>,
}

/// One rule as compiled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleSummary {
    pub id: String,
    /// `allow` or `deny`.
    pub effect: &'static str,
    /// Empty for a deny rule that applies to every principal.
    pub roles: Vec<String>,
    pub routes: Vec<String>,
    /// `["*"]` for every method.
    pub methods: Vec<String>,
    pub path: String,
    /// Key paths of its conditions, e.g. `when.equal.tenant`.
    pub conditions: Vec<String>,
}

/// One role after inheritance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleSummary {
    pub name: String,
    /// Roles it inherits directly, as written.
    pub inherits: Vec<String>,
    /// This role and every role it inherits, directly or not, sorted.
    pub effective_roles: Vec<String>,
    /// Allow rules that name one of the effective roles, in file order.
    pub allow: Vec<String>,
    /// Deny rules that apply to a holder of this role, in file order:
    /// those naming one of the effective roles and those without `roles`.
    pub deny: Vec<String>,
}

impl Policy {
    /// Each role with its effective roles and effective rules.
    pub fn summary(&self) -> Summary {
        let name = |r: RoleIdx| {
            self.roles
                .get(r as usize)
                .map(|x| x.name.to_string())
                .unwrap_or_default()
        };
        let roles = self
            .roles
            .iter()
            .map(|role| {
                let has = |rule_roles: &[RoleIdx]| {
                    rule_roles
                        .iter()
                        .any(|r| role.closure.binary_search(r).is_ok())
                };
                let mut allow = Vec::new();
                let mut deny = Vec::new();
                for rule in &self.rules {
                    match rule.effect {
                        Effect::Allow if has(&rule.roles) => allow.push(rule.id.to_string()),
                        Effect::Deny if rule.roles.is_empty() || has(&rule.roles) => {
                            deny.push(rule.id.to_string());
                        }
                        _ => {}
                    }
                }
                RoleSummary {
                    name: role.name.to_string(),
                    inherits: role.inherits.iter().map(|r| name(*r)).collect(),
                    effective_roles: role.closure.iter().map(|r| name(*r)).collect(),
                    allow,
                    deny,
                }
            })
            .collect();
        Summary {
            revision: self.revision.to_string(),
            rule_count: self.rules.len(),
            routes: self.route_names.iter().map(|r| r.to_string()).collect(),
            roles,
            deny_all: self
                .rules
                .iter()
                .filter(|r| r.effect == Effect::Deny && r.roles.is_empty())
                .map(|r| r.id.to_string())
                .collect(),
            rules: self
                .rules
                .iter()
                .map(|r| RuleSummary {
                    id: r.id.to_string(),
                    effect: match r.effect {
                        Effect::Allow => "allow",
                        Effect::Deny => "deny",
                    },
                    roles: r.roles.iter().map(|x| name(*x)).collect(),
                    routes: r.routes.iter().map(|x| x.to_string()).collect(),
                    methods: match &r.methods {
                        None => vec!["*".to_owned()],
                        Some(m) => m.iter().map(|x| x.to_string()).collect(),
                    },
                    path: r.pattern.as_str().to_owned(),
                    conditions: r.when.names(),
                })
                .collect(),
        }
    }
}
