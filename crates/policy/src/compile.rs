//! Validation of a [`RawPolicy`] and compilation into a [`Policy`].
//! Every error names the key path of the offending value.

use std::collections::{BTreeSet, HashMap, HashSet};

use jiff::tz::TimeZone;
use portcullis_identity::{AttributeRef, ClaimPath, SpiffeId};

use crate::condition::{self, Authn, ClaimCond, Conditions, Equal, Mfa, TimeWindow, ALL_DAYS};
use crate::error::{PolicyError, PolicyErrorKind as K};
use crate::hash::FastMap;
use crate::index::{RoleIdx, RouteIndex, RuleIdx};
use crate::name::Name;
use crate::pattern::{Pattern, Segment};
use crate::policy::{Bindings, Policy, Role, Rule};
use crate::raw::{Effect, RawBinding, RawMfa, RawPolicy, RawRole, RawRule, RawTime, RawWhen};
use crate::{
    MAX_BINDINGS, MAX_CIDRS_PER_RULE, MAX_NAME_LEN, MAX_POLICY_BYTES, MAX_ROLES, MAX_RULES,
};

type Result<T> = std::result::Result<T, PolicyError>;

fn err<T>(path: impl Into<String>, kind: K) -> Result<T> {
    Err(PolicyError::new(path, kind))
}

/// A certificate name in a binding must be written as the verifier
/// renders names (RFC 4514): names are compared as strings, and one
/// spelled otherwise would bind nobody, silently (a role that deny rules
/// target would then never apply).
fn check_dn(name: &str, key: impl FnOnce() -> String) -> Result<()> {
    portcullis_identity::check_rfc4514(name).or_else(|why| {
        err(
            key(),
            K::InvalidPattern(format!(
                "`{name}` is not a certificate name as the gateway writes it: {why}"
            )),
        )
    })
}

/// Checks the size, then parses YAML into raw structs tracking key paths.
///
/// A document that is valid JSON (JSON is a subset of YAML's flow style,
/// with the same meaning) goes through a JSON parser, several times faster
/// than the YAML one: what makes activating a large generated policy fast.
/// Anything that is not valid JSON, including YAML flow mappings such as
/// `{revision: r1}`, is parsed as YAML; a valid JSON document of the wrong
/// shape gets the JSON parser's error with its key path.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(src: &str) -> Result<T> {
    if src.len() > MAX_POLICY_BYTES {
        return err(
            "",
            K::TooLarge {
                len: src.len(),
                max: MAX_POLICY_BYTES,
            },
        );
    }
    if src
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return err("", K::Empty);
    }
    if src.trim_start().starts_with('{') {
        if let Some(parsed) = parse_json(src) {
            return parsed;
        }
    }
    if let Some(deep) = crate::yaml_depth::too_deep_flow_nesting(src) {
        return err("", K::Syntax(deep.to_string()));
    }
    let de = serde_norway::Deserializer::from_str(src);
    serde_path_to_error::deserialize(de).map_err(PolicyError::from_serde)
}

/// `None` when `src` is not valid JSON (the caller parses it as YAML).
fn parse_json<T: serde::de::DeserializeOwned>(src: &str) -> Option<Result<T>> {
    let mut de = serde_json::Deserializer::from_str(src);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) if e.inner().is_data() => return Some(Err(PolicyError::from_serde(e))),
        Err(_) => return None,
    };
    // Trailing characters after the object: not JSON.
    de.end().ok()?;
    Some(Ok(value))
}

impl Policy {
    /// Parses and validates a policy file: YAML, or JSON (a valid JSON
    /// document is read by a JSON parser, several times faster on large
    /// generated policies). Every error names the key path.
    pub fn from_yaml(src: &str) -> Result<Policy> {
        compile(parse_yaml::<RawPolicy>(src)?)
    }
}

/// A name shown in logs and key paths: non-empty, bounded, no whitespace
/// or control characters.
pub(crate) fn check_name(path: &dyn Fn() -> String, value: &str) -> Result<()> {
    if value.is_empty() {
        return err(path(), K::EmptyValue);
    }
    if value.len() > MAX_NAME_LEN {
        return err(path(), K::TooLong { max: MAX_NAME_LEN });
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err(path(), K::BadName(value.escape_default().to_string()));
    }
    Ok(())
}

fn compile(raw: RawPolicy) -> Result<Policy> {
    let revision = raw.revision.0;
    if revision.is_empty() {
        return err("revision", K::EmptyValue);
    }
    if revision.len() > MAX_NAME_LEN {
        return err("revision", K::TooLong { max: MAX_NAME_LEN });
    }
    if revision.chars().any(char::is_control) {
        return err(
            "revision",
            K::BadName(revision.escape_default().to_string()),
        );
    }

    let raw_roles = raw.roles.unwrap_or_default().0;
    let (roles, role_ids) = compile_roles(raw_roles)?;
    let bindings = compile_bindings(raw.bindings.unwrap_or_default(), &roles, &role_ids)?;

    let raw_rules = raw.rules.unwrap_or_default();
    if raw_rules.len() > MAX_RULES {
        return err(
            "rules",
            K::TooMany {
                what: "rules",
                count: raw_rules.len(),
                max: MAX_RULES,
            },
        );
    }
    let mut rules = Vec::with_capacity(raw_rules.len());
    let mut ids = HashSet::with_capacity(raw_rules.len());
    for (i, r) in raw_rules.into_iter().enumerate() {
        let rule = compile_rule(i, r, &role_ids)?;
        if !ids.insert(rule.id.clone()) {
            return err(
                format!("rules[{i}].id"),
                K::DuplicateRuleId(rule.id.to_string()),
            );
        }
        rules.push(rule);
    }

    let mut routes: FastMap<Box<str>, RouteIndex> = FastMap::default();
    let mut route_names = BTreeSet::new();
    for (idx, rule) in rules.iter().enumerate() {
        let idx = RuleIdx::try_from(idx).map_err(|_| {
            PolicyError::new(
                "rules",
                K::TooMany {
                    what: "rules",
                    count: idx,
                    max: MAX_RULES,
                },
            )
        })?;
        for route in &rule.routes {
            route_names.insert(route.clone());
            let index = routes.entry(Box::from(route.as_str())).or_default();
            let segments = rule.pattern.segments();
            match &rule.methods {
                None => insert(index.any_method.bucket_mut(segments), rule, idx),
                Some(methods) => {
                    for m in methods {
                        let node = index.by_method.entry(Box::from(m.as_str())).or_default();
                        insert(node.bucket_mut(segments), rule, idx);
                    }
                }
            }
        }
    }

    let dotted_claims = dotted_claims(&bindings, &rules);
    Ok(Policy {
        revision: Name::new(&revision),
        roles,
        rules,
        routes,
        route_names: route_names.into_iter().collect(),
        bindings,
        dotted_claims,
    })
}

/// Every dotted claim path a binding or a condition reads, once.
fn dotted_claims(bindings: &crate::policy::Bindings, rules: &[Rule]) -> Box<[ClaimPath]> {
    let from_bindings = bindings
        .token
        .values()
        .flat_map(|ib| ib.claims.iter().map(|(p, _)| p));
    let from_rules = rules.iter().flat_map(|r| {
        let w = &r.when;
        w.claims
            .iter()
            .map(|c| &c.path)
            .chain(w.equal.iter().filter_map(|e| match &e.attr {
                AttributeRef::TokenClaim(p) => Some(p),
                _ => None,
            }))
    });
    let mut out: Vec<ClaimPath> = Vec::new();
    for p in from_bindings.chain(from_rules) {
        if p.is_dotted() && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out.into_boxed_slice()
}

fn insert(bucket: &mut crate::index::Bucket, rule: &Rule, idx: RuleIdx) {
    match rule.effect {
        Effect::Allow => {
            for r in &rule.roles {
                bucket.allow_by_role.entry(*r).or_default().push(idx);
            }
        }
        Effect::Deny if rule.roles.is_empty() => bucket.deny_any.push(idx),
        Effect::Deny => {
            for r in &rule.roles {
                bucket.deny_by_role.entry(*r).or_default().push(idx);
            }
        }
    }
}

/// Resolves inheritance, rejects unknown roles and cycles, and
/// precomputes each role's closure. Role ids follow name order.
fn compile_roles(
    raw: Vec<(String, Option<RawRole>)>,
) -> Result<(Vec<Role>, HashMap<String, RoleIdx>)> {
    if raw.len() > MAX_ROLES {
        return err(
            "roles",
            K::TooMany {
                what: "roles",
                count: raw.len(),
                max: MAX_ROLES,
            },
        );
    }
    for (name, _) in &raw {
        check_name(&|| format!("roles.{name}"), name)?;
    }
    let mut names: Vec<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut ids: HashMap<String, RoleIdx> = HashMap::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        // MAX_ROLES fits in a RoleIdx.
        ids.insert(
            (*n).to_owned(),
            RoleIdx::try_from(i).unwrap_or(RoleIdx::MAX),
        );
    }

    let mut inherits: Vec<Vec<RoleIdx>> = vec![Vec::new(); names.len()];
    for (name, role) in &raw {
        let Some(&me) = ids.get(name) else { continue };
        let parents = role
            .as_ref()
            .map(|r| r.inherits.as_slice())
            .unwrap_or_default();
        let mut list = Vec::with_capacity(parents.len());
        for (j, parent) in parents.iter().enumerate() {
            match ids.get(parent) {
                Some(&p) => {
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
                None => {
                    return err(
                        format!("roles.{name}.inherits[{j}]"),
                        K::UnknownRole(parent.clone()),
                    )
                }
            }
        }
        if let Some(slot) = inherits.get_mut(me as usize) {
            *slot = list;
        }
    }

    let closures = closures(&inherits, &names)?;
    let roles = names
        .iter()
        .zip(inherits)
        .zip(closures)
        .map(|((name, inherits), closure)| Role {
            name: Name::new(name),
            inherits,
            closure,
        })
        .collect();
    Ok((roles, ids))
}

/// Depth-first search without recursion (chains may be long): finds a
/// cycle and names it whole, else returns each role's sorted closure.
fn closures(inherits: &[Vec<RoleIdx>], names: &[&str]) -> Result<Vec<Vec<RoleIdx>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnStack,
        Done,
    }
    let n = inherits.len();
    let mut state = vec![State::New; n];
    let mut closure: Vec<Vec<RoleIdx>> = vec![Vec::new(); n];
    let name = |i: usize| names.get(i).copied().unwrap_or("?");
    for start in 0..n {
        if state.get(start) != Some(&State::New) {
            continue;
        }
        // (role, index of the next parent to visit)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        if let Some(s) = state.get_mut(start) {
            *s = State::OnStack;
        }
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let parents = inherits.get(node).map(Vec::as_slice).unwrap_or_default();
            if let Some(&p) = parents.get(*next) {
                *next += 1;
                let p = p as usize;
                match state.get(p) {
                    Some(State::New) => {
                        if let Some(s) = state.get_mut(p) {
                            *s = State::OnStack;
                        }
                        stack.push((p, 0));
                    }
                    Some(State::OnStack) => {
                        let from = stack.iter().position(|(r, _)| *r == p).unwrap_or(0);
                        let mut cycle: Vec<&str> =
                            stack.iter().skip(from).map(|(r, _)| name(*r)).collect();
                        cycle.push(name(p));
                        return err("roles", K::InheritanceCycle(cycle.join(" -> ")));
                    }
                    _ => {}
                }
            } else {
                let mut all = vec![RoleIdx::try_from(node).unwrap_or(RoleIdx::MAX)];
                for &p in parents {
                    if let Some(c) = closure.get(p as usize) {
                        all.extend_from_slice(c);
                    }
                }
                all.sort_unstable();
                all.dedup();
                if let Some(c) = closure.get_mut(node) {
                    *c = all;
                }
                if let Some(s) = state.get_mut(node) {
                    *s = State::Done;
                }
                stack.pop();
            }
        }
    }
    Ok(closure)
}

fn compile_bindings(
    raw: Vec<RawBinding>,
    roles: &[Role],
    ids: &HashMap<String, RoleIdx>,
) -> Result<Bindings> {
    if raw.len() > MAX_BINDINGS {
        return err(
            "bindings",
            K::TooMany {
                what: "bindings",
                count: raw.len(),
                max: MAX_BINDINGS,
            },
        );
    }
    let mut out = Bindings::default();
    for (i, b) in raw.into_iter().enumerate() {
        let Some(&role) = ids.get(&b.role) else {
            return err(format!("bindings[{i}].role"), K::UnknownRole(b.role));
        };
        let closure = roles
            .get(role as usize)
            .map(|r| r.closure.as_slice())
            .unwrap_or_default();
        if b.issuer.is_some() {
            compile_token_binding(i, b, closure, &mut out)?;
            continue;
        }
        for (field, present) in [
            ("subject", b.subject.is_some()),
            ("claim", b.claim.is_some()),
            ("value", b.value.is_some()),
            ("scope", b.scope.is_some()),
        ] {
            if present {
                return err(
                    format!("bindings[{i}].{field}"),
                    K::Invalid("token bindings need `issuer`: claims are only meaningful with the issuer that signed them"),
                );
            }
        }
        let selectors = [
            b.spiffe_id.is_some(),
            b.spiffe_id_prefix.is_some(),
            b.cert_subject.is_some(),
            b.cert_issuer.is_some(),
        ];
        let count = selectors.iter().filter(|s| **s).count();
        if count != 1 {
            return err(format!("bindings[{i}]"), K::BindingSelectors(count));
        }
        let parse_id = |field: &str, v: &str| {
            SpiffeId::parse(v).map_err(|reason| {
                PolicyError::new(
                    format!("bindings[{i}].{field}"),
                    K::InvalidSpiffeId {
                        value: v.to_owned(),
                        reason,
                    },
                )
            })
        };
        let (map, key) = if let Some(v) = &b.spiffe_id {
            (
                &mut out.spiffe_id,
                parse_id("spiffe_id", v)?.as_str().to_owned(),
            )
        } else if let Some(v) = &b.spiffe_id_prefix {
            let id = parse_id("spiffe_id_prefix", v)?;
            let depth = id.path().bytes().filter(|c| *c == b'/').count();
            out.prefix_depth = if out.spiffe_id_prefix.is_empty() {
                (depth, depth)
            } else {
                (out.prefix_depth.0.min(depth), out.prefix_depth.1.max(depth))
            };
            (&mut out.spiffe_id_prefix, id.as_str().to_owned())
        } else if let Some(v) = b.cert_subject {
            if v.is_empty() {
                return err(format!("bindings[{i}].cert_subject"), K::EmptyValue);
            }
            check_dn(&v, || format!("bindings[{i}].cert_subject"))?;
            (&mut out.cert_subject, v)
        } else if let Some(v) = b.cert_issuer {
            if v.is_empty() {
                return err(format!("bindings[{i}].cert_issuer"), K::EmptyValue);
            }
            check_dn(&v, || format!("bindings[{i}].cert_issuer"))?;
            (&mut out.cert_issuer, v)
        } else {
            return err(format!("bindings[{i}]"), K::BindingSelectors(0));
        };
        map.entry(key.into_boxed_str())
            .or_default()
            .extend_from_slice(closure);
    }
    for map in [
        &mut out.spiffe_id,
        &mut out.spiffe_id_prefix,
        &mut out.cert_subject,
        &mut out.cert_issuer,
    ] {
        for v in map.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
    }
    for ib in out.token.values_mut() {
        ib.any.sort_unstable();
        ib.any.dedup();
        for map in std::iter::once(&mut ib.subject)
            .chain(std::iter::once(&mut ib.scope))
            .chain(ib.claims.iter_mut().map(|(_, m)| m))
        {
            for v in map.values_mut() {
                v.sort_unstable();
                v.dedup();
            }
        }
    }
    Ok(out)
}

/// A binding with `issuer`: every token from it, or those with a subject,
/// a claim value or a scope.
fn compile_token_binding(
    i: usize,
    b: RawBinding,
    closure: &[RoleIdx],
    out: &mut Bindings,
) -> Result<()> {
    for (field, present) in [
        ("spiffe_id", b.spiffe_id.is_some()),
        ("spiffe_id_prefix", b.spiffe_id_prefix.is_some()),
        ("cert_subject", b.cert_subject.is_some()),
        ("cert_issuer", b.cert_issuer.is_some()),
    ] {
        if present {
            return err(
                format!("bindings[{i}].{field}"),
                K::Invalid(
                    "a binding matches a certificate or a token, not both; write two bindings",
                ),
            );
        }
    }
    let RawBinding {
        issuer,
        subject,
        claim,
        value,
        scope,
        ..
    } = b;
    let issuer = issuer.unwrap_or_default();
    if issuer.is_empty() {
        return err(format!("bindings[{i}].issuer"), K::EmptyValue);
    }
    let count = [subject.is_some(), claim.is_some(), scope.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if count > 1 {
        return err(
            format!("bindings[{i}]"),
            K::Invalid("a token binding takes at most one of `subject`, `claim` or `scope`"),
        );
    }
    if value.is_some() != claim.is_some() {
        return err(
            format!("bindings[{i}]"),
            K::Invalid("`claim` and `value` go together"),
        );
    }
    let ib = out.token.entry(issuer.into_boxed_str()).or_default();
    let target = if let Some(sub) = subject {
        if sub.is_empty() {
            return err(format!("bindings[{i}].subject"), K::EmptyValue);
        }
        ib.subject.entry(sub.into_boxed_str()).or_default()
    } else if let (Some(claim), Some(value)) = (claim, value) {
        let path = ClaimPath::parse(&claim).map_err(|reason| {
            PolicyError::new(
                format!("bindings[{i}].claim"),
                K::InvalidAttribute {
                    value: claim.escape_default().to_string(),
                    reason,
                },
            )
        })?;
        let slot = match ib.claims.iter().position(|(p, _)| *p == path) {
            Some(pos) => pos,
            None => {
                ib.claims.push((path, FastMap::default()));
                ib.claims.len() - 1
            }
        };
        match ib.claims.get_mut(slot) {
            Some((_, values)) => values.entry(value.0.into_boxed_str()).or_default(),
            None => return err(format!("bindings[{i}]"), K::Invalid("internal error")),
        }
    } else if let Some(scope) = scope {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            return err(
                format!("bindings[{i}].scope"),
                K::Invalid("must be one non-empty scope without spaces"),
            );
        }
        ib.scope.entry(scope.into_boxed_str()).or_default()
    } else {
        &mut ib.any
    };
    target.extend_from_slice(closure);
    Ok(())
}

fn compile_rule(i: usize, r: RawRule, ids: &HashMap<String, RoleIdx>) -> Result<Rule> {
    let at = |field: &str| format!("rules[{i}].{field}");
    check_name(&|| at("id"), &r.id)?;

    let roles = match (r.effect, r.roles) {
        (Effect::Allow, None) => return err(at("roles"), K::AllowWithoutRoles),
        (Effect::Allow, Some(list)) if list.is_empty() => {
            return err(at("roles"), K::AllowWithoutRoles)
        }
        (Effect::Deny, Some(list)) if list.is_empty() => {
            return err(
                at("roles"),
                K::Invalid("must not be empty; omit `roles` to deny every principal"),
            )
        }
        (_, None) => Vec::new(),
        (_, Some(list)) => {
            let mut out = Vec::with_capacity(list.len());
            for (j, role) in list.into_iter().enumerate() {
                match ids.get(&role) {
                    Some(&id) => out.push(id),
                    None => return err(format!("rules[{i}].roles[{j}]"), K::UnknownRole(role)),
                }
            }
            out.sort_unstable();
            out.dedup();
            out
        }
    };

    let routes = match (r.route, r.routes) {
        (Some(_), Some(_)) => {
            return err(
                format!("rules[{i}]"),
                K::Invalid("give either `route` or `routes`, not both"),
            )
        }
        (None, None) => {
            return err(
                format!("rules[{i}]"),
                K::Invalid("missing `route` (or `routes`)"),
            )
        }
        (Some(route), None) => {
            check_route(&|| at("route"), &route)?;
            vec![Name::new(&route)]
        }
        (None, Some(list)) => {
            if list.is_empty() {
                return err(at("routes"), K::EmptyValue);
            }
            let mut out = Vec::with_capacity(list.len());
            for (j, route) in list.iter().enumerate() {
                check_route(&|| format!("rules[{i}].routes[{j}]"), route)?;
                out.push(Name::new(route));
            }
            out.sort_unstable();
            out.dedup();
            out
        }
    };

    let methods = match r.methods {
        None => None,
        Some(list) if list.is_empty() => return err(at("methods"), K::EmptyValue),
        Some(list) if list.iter().any(|m| m == "*") => {
            if list.len() != 1 {
                return err(at("methods"), K::Invalid("`*` must be the only method"));
            }
            None
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (j, m) in list.iter().enumerate() {
                if let Err(reason) = check_method(m) {
                    return err(
                        format!("rules[{i}].methods[{j}]"),
                        K::InvalidMethod {
                            value: m.escape_default().to_string(),
                            reason,
                        },
                    );
                }
                out.push(Name::new(m));
            }
            out.sort_unstable();
            out.dedup();
            Some(out)
        }
    };

    let pattern = match r.path {
        None => Pattern::any(),
        Some(p) => Pattern::parse(&p).map_err(|kind| PolicyError::new(at("path"), kind))?,
    };
    let when = match r.when {
        None => Conditions::default(),
        Some(w) => compile_when(&format!("rules[{i}].when"), w, &pattern, ids)?,
    };
    Ok(Rule {
        id: Name::new(&r.id),
        effect: r.effect,
        roles,
        routes,
        methods,
        captures: pattern.captures(),
        pattern,
        when,
    })
}

fn check_route(path: &dyn Fn() -> String, route: &str) -> Result<()> {
    check_name(path, route)?;
    if route == "*" {
        return err(
            path(),
            K::Invalid("`*` is not a wildcard for routes; list the routes with `routes:`"),
        );
    }
    Ok(())
}

/// An HTTP method token (RFC 9110 §9.1), uppercase letters only because
/// methods are case-sensitive and registered methods are uppercase.
fn check_method(m: &str) -> std::result::Result<(), &'static str> {
    if m.is_empty() {
        return Err("must not be empty");
    }
    if m.len() > MAX_NAME_LEN {
        return Err("too long");
    }
    for b in m.bytes() {
        if b.is_ascii_lowercase() {
            return Err("methods are case-sensitive; write them in uppercase");
        }
        if !portcullis_http_guard::is_tchar(b) {
            return Err("not an HTTP method token");
        }
    }
    Ok(())
}

fn compile_when(
    at: &str,
    w: RawWhen,
    pattern: &Pattern,
    ids: &HashMap<String, RoleIdx>,
) -> Result<Conditions> {
    let source_ip = match w.source_ip {
        None => None,
        Some(list) => {
            if list.is_empty() {
                return err(format!("{at}.source_ip"), K::EmptyValue);
            }
            if list.len() > MAX_CIDRS_PER_RULE {
                return err(
                    format!("{at}.source_ip"),
                    K::TooMany {
                        what: "networks",
                        count: list.len(),
                        max: MAX_CIDRS_PER_RULE,
                    },
                );
            }
            let mut nets = Vec::with_capacity(list.len());
            for (j, s) in list.iter().enumerate() {
                let net = condition::parse_cidr(s).map_err(|reason| {
                    PolicyError::new(
                        format!("{at}.source_ip[{j}]"),
                        K::InvalidCidr {
                            value: s.escape_default().to_string(),
                            reason,
                        },
                    )
                })?;
                nets.push(net);
            }
            Some(nets.into_boxed_slice())
        }
    };
    let time = match w.time {
        None => None,
        Some(t) => Some(compile_time(&format!("{at}.time"), t)?),
    };
    let mut equal = Vec::new();
    for (param, attr) in w.equal.map(|m| m.0).unwrap_or_default() {
        let path = format!("{at}.equal.{param}");
        let segment = pattern.segments().iter().position(|s| match s {
            Segment::Param(p) => p.as_str() == param,
            _ => false,
        });
        let Some(segment) = segment else {
            return err(path, K::UnknownParam(param));
        };
        let attr_ref = AttributeRef::parse(&attr).map_err(|reason| {
            PolicyError::new(
                path.clone(),
                K::InvalidAttribute {
                    value: attr.clone(),
                    reason,
                },
            )
        })?;
        equal.push(Equal {
            param: Name::new(&param),
            segment,
            attr: attr_ref,
        });
    }
    let mut claims = Vec::new();
    for (path_text, values) in w.claims.map(|m| m.0).unwrap_or_default() {
        let key = format!("{at}.claims.{path_text}");
        let path = ClaimPath::parse(&path_text).map_err(|reason| {
            PolicyError::new(
                key.clone(),
                K::InvalidAttribute {
                    value: path_text.escape_default().to_string(),
                    reason,
                },
            )
        })?;
        if values.0.is_empty() {
            return err(key, K::EmptyValue);
        }
        claims.push(ClaimCond {
            path,
            values: values.0.into_iter().map(|v| v.0.into_boxed_str()).collect(),
        });
    }
    let mut authn = Authn::default();
    if let Some(list) = w.authn {
        if list.is_empty() {
            return err(format!("{at}.authn"), K::EmptyValue);
        }
        for (j, name) in list.iter().enumerate() {
            match Authn::NAMES.iter().find(|(n, _)| n == name) {
                Some((_, bit)) => authn.0 |= bit,
                None => {
                    return err(
                        format!("{at}.authn[{j}]"),
                        K::Invalid("expected `mtls`, `token` or `bound_token`"),
                    )
                }
            }
        }
    }
    let mut has_roles = Vec::new();
    if let Some(list) = w.has_roles {
        if list.is_empty() {
            return err(format!("{at}.has_roles"), K::EmptyValue);
        }
        for (j, role) in list.into_iter().enumerate() {
            match ids.get(&role) {
                Some(&id) => has_roles.push((id, Name::new(&role))),
                None => return err(format!("{at}.has_roles[{j}]"), K::UnknownRole(role)),
            }
        }
        has_roles.sort_unstable_by_key(|(id, _)| *id);
        has_roles.dedup_by_key(|(id, _)| *id);
    }
    let mfa = match w.mfa {
        None => None,
        Some(m) => Some(compile_mfa(&format!("{at}.mfa"), m)?),
    };
    Ok(Conditions {
        source_ip,
        time,
        equal: equal.into_boxed_slice(),
        claims: claims.into_boxed_slice(),
        authn,
        has_roles: has_roles.into_boxed_slice(),
        mfa,
    })
}

/// Longest `when.mfa.max_age`: a day; longer is not "fresh" any more.
const MAX_MFA_AGE_SECS: i64 = 86_400;

fn compile_mfa(at: &str, m: RawMfa) -> Result<Mfa> {
    let list = |field: &str, v: Option<Vec<String>>| -> Result<Box<[Box<str>]>> {
        match v {
            None => Ok(Box::default()),
            Some(l) if l.is_empty() => err(format!("{at}.{field}"), K::EmptyValue),
            Some(l) => {
                if let Some((j, _)) = l.iter().enumerate().find(|(_, s)| s.is_empty()) {
                    return err(format!("{at}.{field}[{j}]"), K::EmptyValue);
                }
                Ok(l.into_iter().map(String::into_boxed_str).collect())
            }
        }
    };
    let methods = list("methods", m.methods)?;
    let acr = list("acr", m.acr)?;
    let max_age_secs = match m.max_age {
        None => None,
        Some(s) => match condition::parse_duration_secs(&s) {
            Some(v) if v <= MAX_MFA_AGE_SECS => Some(v),
            Some(_) => return err(format!("{at}.max_age"), K::Invalid("at most 1d")),
            None => {
                return err(
                    format!("{at}.max_age"),
                    K::Invalid("expected a duration such as `90s`, `15m` or `12h`"),
                )
            }
        },
    };
    if methods.is_empty() && acr.is_empty() && max_age_secs.is_none() {
        return err(
            at,
            K::Invalid("give `methods`, `acr`, `max_age`, or several of them"),
        );
    }
    Ok(Mfa {
        methods,
        acr,
        max_age_secs,
    })
}

fn compile_time(at: &str, t: RawTime) -> Result<TimeWindow> {
    let has_days = t.days.is_some();
    let days = match t.days {
        None => ALL_DAYS,
        Some(list) => {
            if list.is_empty() {
                return err(format!("{at}.days"), K::EmptyValue);
            }
            let mut mask = 0u8;
            for (j, d) in list.iter().enumerate() {
                match condition::parse_day(d) {
                    Some(bit) => mask |= bit,
                    None => {
                        return err(
                            format!("{at}.days[{j}]"),
                            K::InvalidDay(d.escape_default().to_string()),
                        )
                    }
                }
            }
            mask
        }
    };
    let hhmm = |field: &str, v: &str, end: bool| {
        condition::parse_hhmm(v, end).ok_or_else(|| {
            PolicyError::new(
                format!("{at}.{field}"),
                K::InvalidTime(v.escape_default().to_string()),
            )
        })
    };
    let span = match (&t.from, &t.to) {
        (None, None) => {
            if !has_days {
                return err(
                    at,
                    K::Invalid("time window needs `days`, `from` and `to`, or both"),
                );
            }
            None
        }
        (Some(from), Some(to)) => {
            let from = hhmm("from", from, false)?;
            let to = hhmm("to", to, true)?;
            if from == to {
                return err(at, K::Invalid("`from` and `to` must differ"));
            }
            Some((from, to))
        }
        _ => return err(at, K::Invalid("`from` and `to` must be given together")),
    };
    let tz_name = t.tz.unwrap_or_else(|| "UTC".to_owned());
    let tz = TimeZone::get(&tz_name).map_err(|_| {
        PolicyError::new(
            format!("{at}.tz"),
            K::UnknownTimeZone(tz_name.escape_default().to_string()),
        )
    })?;
    Ok(TimeWindow {
        days,
        span,
        tz,
        tz_name: tz_name.into_boxed_str(),
    })
}

#[cfg(test)]
mod tests;
