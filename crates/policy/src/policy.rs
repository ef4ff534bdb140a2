//! The compiled policy and its evaluation.

use crate::hash::FastMap;
use std::net::IpAddr;

use jiff::Timestamp;
use portcullis_identity::{ClaimPath, Principal, TokenIdentity};

use crate::condition::{Conditions, Context, Which};
use crate::decision::{Decision, FailedCondition, Reason};
use crate::index::{Bucket, Matched, RoleIdx, RouteIndex, RuleIdx};
use crate::name::Name;
use crate::pattern::{split_request_path, Pattern};
use crate::raw::Effect;

/// A request to decide on. The gateway fills it in after authentication
/// and routing.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// Route name chosen by the gateway.
    pub route: &'a str,
    /// HTTP method token, matched case-sensitively (e.g. `GET`).
    pub method: &'a str,
    /// Normalised, percent-decoded path starting with `/`.
    pub path: &'a str,
    pub source_ip: IpAddr,
    /// The time the request is decided at; the engine reads no clock.
    pub now: Timestamp,
}

/// A compiled, validated policy. Immutable, `Send + Sync`; share it with
/// `Arc` and swap the `Arc` to reload.
#[derive(Debug)]
pub struct Policy {
    pub(crate) revision: Name,
    /// Indexed by [`RoleIdx`], sorted by name.
    pub(crate) roles: Vec<Role>,
    /// Indexed by [`RuleIdx`], in file order.
    pub(crate) rules: Vec<Rule>,
    pub(crate) routes: FastMap<Box<str>, RouteIndex>,
    /// Sorted, unique.
    pub(crate) route_names: Vec<Name>,
    pub(crate) bindings: Bindings,
    /// Every dotted claim path the bindings and conditions read, unique:
    /// a token where one of them is ambiguous is denied.
    pub(crate) dotted_claims: Box<[ClaimPath]>,
}

#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) name: Name,
    pub(crate) inherits: Vec<RoleIdx>,
    /// This role and every role it inherits, directly or not; sorted.
    pub(crate) closure: Vec<RoleIdx>,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: Name,
    pub(crate) effect: Effect,
    /// Sorted; empty only for a deny rule that applies to every principal.
    pub(crate) roles: Vec<RoleIdx>,
    /// Sorted, unique.
    pub(crate) routes: Vec<Name>,
    /// `None` = every method.
    pub(crate) methods: Option<Vec<Name>>,
    pub(crate) pattern: Pattern,
    /// Parameter name and the request segment it captures.
    pub(crate) captures: Vec<(Name, usize)>,
    pub(crate) when: Conditions,
}

/// Binding lookups; each value is the union of the inheritance closures of
/// the roles bound to the key, sorted.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    pub(crate) spiffe_id: FastMap<Box<str>, Vec<RoleIdx>>,
    pub(crate) spiffe_id_prefix: FastMap<Box<str>, Vec<RoleIdx>>,
    /// Fewest and most path segments among the prefixes, to skip lookups
    /// of ancestors no prefix can equal.
    pub(crate) prefix_depth: (usize, usize),
    pub(crate) cert_subject: FastMap<Box<str>, Vec<RoleIdx>>,
    pub(crate) cert_issuer: FastMap<Box<str>, Vec<RoleIdx>>,
    /// Token bindings by issuer.
    pub(crate) token: FastMap<Box<str>, IssuerBindings>,
}

/// Roles by a string key (subject, claim value, scope).
pub(crate) type RolesByValue = FastMap<Box<str>, Vec<RoleIdx>>;

/// The token bindings of one issuer.
#[derive(Debug, Default)]
pub(crate) struct IssuerBindings {
    /// Every token from the issuer.
    pub(crate) any: Vec<RoleIdx>,
    pub(crate) subject: FastMap<Box<str>, Vec<RoleIdx>>,
    /// By claim path, then claim value.
    pub(crate) claims: Vec<(ClaimPath, RolesByValue)>,
    pub(crate) scope: FastMap<Box<str>, Vec<RoleIdx>>,
}

/// The segments of a route's path prefix (`/` has none).
fn segments_of(prefix: &str) -> Vec<&str> {
    prefix.split('/').filter(|s| !s.is_empty()).collect()
}

impl Policy {
    /// A policy with no roles and no rules: it denies every request.
    pub fn empty() -> Policy {
        Policy {
            revision: Name::new(""),
            roles: Vec::new(),
            rules: Vec::new(),
            routes: FastMap::default(),
            route_names: Vec::new(),
            bindings: Bindings::default(),
            dotted_claims: Box::default(),
        }
    }

    /// The file's `revision:` as written; empty for [`Policy::empty`].
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The routes the rules reference, sorted and unique.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.route_names.iter().map(Name::as_str)
    }

    /// The ids of the rules naming `route` whose path pattern can match
    /// no path under `prefix` (the route's path prefix, segment-wise, as
    /// the gateway routes): such a rule never sees a request, and a deny
    /// rule written that way (a path thought relative to the prefix) is
    /// dead.
    pub fn rules_outside_prefix<'a>(
        &'a self,
        route: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let under = segments_of(prefix);
        self.rules_on(route)
            .filter(move |r| !r.pattern.can_match_under(&under))
            .map(|r| r.id.as_str())
    }

    /// The rules naming `route`.
    fn rules_on<'a>(&'a self, route: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.routes.iter().any(|n| n.as_str() == route))
    }

    /// What loads but may not mean what it says, one sentence each:
    /// a `has_roles` role that certificate bindings and token bindings
    /// both grant (directly or by inheritance) holds for either
    /// credential, so it does not require a workload.
    pub fn warnings(&self) -> Vec<String> {
        let b = &self.bindings;
        let cert: std::collections::BTreeSet<RoleIdx> = b
            .spiffe_id
            .values()
            .chain(b.spiffe_id_prefix.values())
            .chain(b.cert_subject.values())
            .chain(b.cert_issuer.values())
            .flatten()
            .copied()
            .collect();
        let token: std::collections::BTreeSet<RoleIdx> = b
            .token
            .values()
            .flat_map(|ib| {
                std::iter::once(&ib.any)
                    .chain(ib.subject.values())
                    .chain(ib.claims.iter().flat_map(|(_, by)| by.values()))
                    .chain(ib.scope.values())
            })
            .flatten()
            .copied()
            .collect();
        let mut out = Vec::new();
        for rule in &self.rules {
            for (role, name) in rule.when.has_roles.iter() {
                if cert.contains(role) && token.contains(role) {
                    out.push(format!(
                        "rule `{}`: `has_roles: [{name}]` holds for a token as well as a certificate: certificate bindings and token bindings both grant `{name}`",
                        rule.id
                    ));
                }
            }
        }
        out
    }

    /// The token issuers the bindings name, sorted.
    pub fn token_issuers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.bindings.token.keys().map(|k| &**k).collect();
        v.sort_unstable();
        v
    }

    /// The rules naming `route` whose path pattern matches only paths
    /// under `prefix` (segment-wise), with the methods each names (`None`
    /// = every method) and how many routes it names: the rules a route
    /// with that longer prefix takes every request from, when it also
    /// takes their methods.
    pub fn rules_only_under<'a>(
        &'a self,
        route: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, Option<Vec<&'a str>>, usize)> + 'a {
        let under = segments_of(prefix);
        self.rules_on(route)
            .filter(move |r| r.pattern.matches_only_under(&under))
            .map(|r| {
                let methods = r
                    .methods
                    .as_ref()
                    .map(|m| m.iter().map(Name::as_str).collect());
                (r.id.as_str(), methods, r.routes.len())
            })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The principal's effective roles: every role a matching binding gives
    /// it, closed under inheritance. Anonymous principals have none.
    pub fn roles_of(&self, principal: &Principal) -> impl Iterator<Item = &str> {
        self.role_ids(principal)
            .into_iter()
            .filter_map(|r| self.role_name(r).map(Name::as_str))
    }

    /// Decides on a request. Never panics; denies unless an allow rule
    /// matches and no deny rule does.
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let roles = self.role_ids(req.principal);
        let role_names = || -> Vec<Name> {
            roles
                .iter()
                .filter_map(|r| self.role_name(*r).cloned())
                .collect()
        };
        let deny = |reason: Reason| Decision::new(reason, role_names(), self.revision.clone());

        let Some(segments) = split_request_path(req.path) else {
            return deny(Reason::InvalidPath);
        };
        if let Some(token) = &req.principal.token {
            if let Some(path) = self
                .dotted_claims
                .iter()
                .find(|p| p.is_ambiguous_in(&token.claims))
            {
                return deny(Reason::AmbiguousClaim).with_failed(FailedCondition {
                    condition: format!("claim `{path}`"),
                    detail: format!(
                        "the token has a top-level claim named `{path}` and a nested value at that path"
                    ),
                });
            }
        }
        let no_rule = if roles.is_empty() {
            Reason::NoRoles
        } else {
            Reason::NoMatchingRule
        };
        let Some(route) = self.routes.get(req.route) else {
            return deny(no_rule);
        };

        let mut buckets = Matched::new();
        let mut collect = |b| buckets.push(b);
        if let Some(node) = route.by_method.get(req.method) {
            node.matches(&segments, 0, &mut collect);
        }
        route.any_method.matches(&segments, 0, &mut collect);
        if buckets.is_empty() {
            return deny(no_rule);
        }

        let cx = Context {
            principal: req.principal,
            ip: req.source_ip.to_canonical(),
            now: req.now,
            segments: &segments,
            roles: &roles,
        };

        // 1. Deny rules win: the first (in file order) that applies.
        let mut deny_rule: Option<RuleIdx> = None;
        let mut try_deny = |list: &[RuleIdx]| {
            for &idx in list {
                if deny_rule.is_some_and(|d| d <= idx) {
                    break;
                }
                if self
                    .rule(idx)
                    .is_some_and(|r| r.when.check(&cx, true).is_ok())
                {
                    deny_rule = Some(idx);
                    break;
                }
            }
        };
        for b in buckets.iter() {
            try_deny(&b.deny_any);
            Bucket::for_roles(&b.deny_by_role, &roles, &mut try_deny);
        }
        if let Some(rule) = deny_rule.and_then(|i| self.rule(i)) {
            return deny(Reason::ExplicitDeny).with_rule(rule.id.clone());
        }
        if roles.is_empty() {
            return deny(Reason::NoRoles);
        }

        // 2. The first allow rule for the principal's roles whose
        //    conditions hold; remember the first whose conditions failed.
        let mut allow_rule: Option<RuleIdx> = None;
        let mut failed: Option<(RuleIdx, Which)> = None;
        let mut any_allow = false;
        let mut any_for_roles = false;
        for b in buckets.iter() {
            any_allow |= b.has_allow();
            Bucket::for_roles(&b.allow_by_role, &roles, |list| {
                any_for_roles = true;
                for &idx in list {
                    if allow_rule.is_some_and(|a| a <= idx) {
                        break;
                    }
                    let Some(rule) = self.rule(idx) else { continue };
                    match rule.when.check(&cx, false) {
                        Ok(()) => {
                            allow_rule = Some(idx);
                            break;
                        }
                        Err(which) => {
                            if failed.is_none_or(|(f, _)| idx < f) {
                                failed = Some((idx, which));
                            }
                        }
                    }
                }
            });
        }
        if let Some(rule) = allow_rule.and_then(|i| self.rule(i)) {
            let params = rule
                .captures
                .iter()
                .filter_map(|(name, i)| segments.get(*i).map(|v| (name.clone(), v.to_owned())))
                .collect();
            return Decision::new(Reason::Allow, role_names(), self.revision.clone())
                .with_rule(rule.id.clone())
                .with_params(params);
        }
        if !any_allow {
            return deny(Reason::NoMatchingRule);
        }
        if !any_for_roles {
            return deny(Reason::RoleNotPermitted);
        }
        match failed.and_then(|(i, which)| self.rule(i).map(|r| (r, which))) {
            Some((rule, which)) => deny(Reason::ConditionFailed)
                .with_rule(rule.id.clone())
                .with_failed(FailedCondition {
                    condition: rule.when.name(which),
                    detail: rule.when.describe(which, &cx),
                }),
            // Unreachable: rules for the roles exist and none allowed.
            None => deny(Reason::RoleNotPermitted),
        }
    }

    fn rule(&self, idx: RuleIdx) -> Option<&Rule> {
        self.rules.get(usize::try_from(idx).ok()?)
    }

    fn role_name(&self, idx: RoleIdx) -> Option<&Name> {
        self.roles.get(usize::try_from(idx).ok()?).map(|r| &r.name)
    }

    /// Effective role ids, sorted and unique. Exact bindings are hash
    /// lookups; prefix bindings walk the SPIFFE ID's ancestors at segment
    /// boundaries, one lookup per segment.
    pub(crate) fn role_ids(&self, principal: &Principal) -> Vec<RoleIdx> {
        let b = &self.bindings;
        let mut out: Vec<RoleIdx> = Vec::new();
        let mut sources = 0usize;
        let mut add = |found: Option<&Vec<RoleIdx>>| {
            if let Some(list) = found {
                if !list.is_empty() {
                    out.extend_from_slice(list);
                    sources += 1;
                }
            }
        };
        if let Some(token) = &principal.token {
            if let Some(ib) = b.token.get(token.issuer.as_str()) {
                token_roles(ib, token, &mut add);
            }
        }
        let Some(cert) = &principal.cert else {
            if sources > 1 {
                out.sort_unstable();
                out.dedup();
            }
            return out;
        };
        if let Some(id) = &cert.spiffe_id {
            if !b.spiffe_id.is_empty() {
                add(b.spiffe_id.get(id.as_str()));
            }
            if !b.spiffe_id_prefix.is_empty() {
                let s = id.as_str();
                // "spiffe://" + trust domain: the shortest ancestor.
                let root = "spiffe://".len() + id.trust_domain().len();
                let (min, max) = b.prefix_depth;
                let mut depth = id.path().bytes().filter(|c| *c == b'/').count();
                let mut end = s.len();
                while let Some(ancestor) = s.get(..end) {
                    if depth < min {
                        break;
                    }
                    if depth <= max {
                        add(b.spiffe_id_prefix.get(ancestor));
                    }
                    if end <= root {
                        break;
                    }
                    match ancestor.rfind('/') {
                        Some(i) if i >= root => end = i,
                        _ => break,
                    }
                    depth = depth.saturating_sub(1);
                }
            }
        }
        if !b.cert_subject.is_empty() {
            add(b.cert_subject.get(cert.subject.as_str()));
        }
        if !b.cert_issuer.is_empty() {
            add(b.cert_issuer.get(cert.issuer.as_str()));
        }
        if sources > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }
}

/// Roles from the token bindings of the token's issuer.
fn token_roles<'a>(
    ib: &'a IssuerBindings,
    token: &TokenIdentity,
    add: &mut impl FnMut(Option<&'a Vec<RoleIdx>>),
) {
    add(Some(&ib.any));
    if let Some(sub) = &token.subject {
        if !ib.subject.is_empty() {
            add(ib.subject.get(sub.as_str()));
        }
    }
    for (path, values) in &ib.claims {
        for v in token.claim_values(path) {
            add(values.get(v.as_ref()));
        }
    }
    if !ib.scope.is_empty() {
        for s in token.scopes() {
            add(ib.scope.get(s));
        }
    }
}

#[cfg(test)]
mod tests;
