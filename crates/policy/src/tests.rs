//! Property tests over whole policies.

use std::fmt::Write as _;

use proptest::prelude::*;

use crate::test_util::{cert, load, spiffe};
use crate::{Policy, Request};
use jiff::Timestamp;
use portcullis_identity::Principal;

const IDS: [&str; 4] = [
    "spiffe://example.org/ns/prod/sa/web",
    "spiffe://example.org/ns/prod/sa/db",
    "spiffe://example.org/ns/dev/sa/web",
    "spiffe://other.org/x",
];
const ROUTES: [&str; 3] = ["a", "b", "c"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const SEGS: [&str; 3] = ["x", "y", "z"];

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::anonymous()),
        (0..IDS.len()).prop_map(|i| spiffe(IDS[i])),
        ("[A-Za-z=, ]{0,12}", "[A-Za-z=, ]{0,12}").prop_map(|(s, i)| cert(None, &s, &i)),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_000_000_000).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn ip() -> impl Strategy<Value = std::net::IpAddr> {
    any::<std::net::IpAddr>()
}

/// A request path of known segments, optionally with a trailing slash.
fn req_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(0..SEGS.len(), 0..4), any::<bool>()).prop_map(|(segs, slash)| {
        let mut p: String = segs.iter().map(|i| format!("/{}", SEGS[*i])).collect();
        if p.is_empty() || slash {
            p.push('/');
        }
        p
    })
}

/// A path pattern over the same segments.
fn pattern() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        (0..SEGS.len()).prop_map(|i| SEGS[i].to_owned()),
        Just("*".to_owned()),
        Just("{p}".to_owned()),
    ];
    (prop::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(segs, rest)| {
        let mut out = String::new();
        let mut n = 0;
        for s in segs {
            if s == "{p}" {
                n += 1;
                let _ = write!(out, "/{{p{n}}}");
            } else {
                let _ = write!(out, "/{s}");
            }
        }
        if rest {
            out.push_str("/**");
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    })
}

#[derive(Debug, Clone)]
struct RuleSpec {
    deny: bool,
    roles: Vec<usize>,
    route: usize,
    methods: Option<Vec<usize>>,
    path: String,
    cidr: Option<bool>,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(0..4usize, 0..3),
        0..ROUTES.len(),
        prop::option::of(prop::collection::vec(0..METHODS.len(), 1..3)),
        pattern(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(deny, roles, route, methods, path, cidr)| RuleSpec {
            deny,
            roles,
            route,
            methods,
            path,
            cidr,
        })
}

/// A random policy: four roles with random downward inheritance,
/// bindings for the test identities, and the given rules.
fn policy_yaml(edges: &[(usize, usize)], rules: &[RuleSpec]) -> String {
    let mut s = String::from("revision: prop\nroles:\n");
    for r in 0..4 {
        let parents: Vec<String> = edges
            .iter()
            .filter(|(a, b)| *a == r && *b > r)
            .map(|(_, b)| format!("r{b}"))
            .collect();
        let _ = writeln!(s, "  r{r}: {{ inherits: [{}] }}", parents.join(", "));
    }
    s.push_str("bindings:\n");
    s.push_str("  - { role: r0, spiffe_id: \"spiffe://example.org/ns/prod/sa/web\" }\n");
    s.push_str("  - { role: r1, spiffe_id_prefix: \"spiffe://example.org/ns/prod\" }\n");
    s.push_str("  - { role: r2, spiffe_id_prefix: \"spiffe://example.org\" }\n");
    s.push_str("  - { role: r3, cert_subject: \"CN=a\" }\n");
    s.push_str("rules:\n");
    for (i, r) in rules.iter().enumerate() {
        let _ = write!(
            s,
            "  - {{ id: rule{i}, effect: {}, route: {}, path: \"{}\"",
            if r.deny { "deny" } else { "allow" },
            ROUTES[r.route],
            r.path
        );
        let mut roles = r.roles.clone();
        if !r.deny && roles.is_empty() {
            roles.push(i % 4);
        }
        if !roles.is_empty() {
            let names: Vec<String> = roles.iter().map(|x| format!("r{x}")).collect();
            let _ = write!(s, ", roles: [{}]", names.join(", "));
        }
        if let Some(m) = &r.methods {
            let names: Vec<&str> = m.iter().map(|x| METHODS[*x]).collect();
            let _ = write!(s, ", methods: [{}]", names.join(", "));
        }
        match r.cidr {
            Some(true) => s.push_str(", when: { source_ip: [\"0.0.0.0/1\", \"::/1\"] }"),
            Some(false) => s.push_str(", when: { source_ip: [\"128.0.0.0/1\"] }"),
            None => {}
        }
        s.push_str(" }\n");
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn empty_policy_denies_every_request(
        who in principal(),
        route in "[a-z*]{0,6}",
        method in "[A-Za-z*]{0,7}",
        path in "(/[a-z.{}*?#%]{0,4}){0,4}/?|[^/].{0,10}",
        source_ip in ip(),
        now in timestamp(),
    ) {
        let req = Request { principal: &who, route: &route, method: &method, path: &path, source_ip, now };
        let d = Policy::empty().evaluate(&req);
        prop_assert!(!d.is_allowed());
        prop_assert!(d.rule().is_none());
        let no_rules = load(&policy_yaml(&[(0, 1), (1, 2)], &[]));
        let d = no_rules.evaluate(&req);
        prop_assert!(!d.is_allowed());
        prop_assert!(d.rule().is_none());
    }

    #[test]
    fn adding_a_matching_deny_rule_denies_the_request(
        edges in prop::collection::vec((0..4usize, 0..4usize), 0..6),
        rules in prop::collection::vec(rule_spec(), 0..12),
        who in principal(),
        route in 0..ROUTES.len(),
        method in 0..METHODS.len(),
        path in req_path(),
        source_ip in ip(),
        now in timestamp(),
        deny_shape in 0..4u8,
    ) {
        let base = policy_yaml(&edges, &rules);
        let policy = load(&base);
        let req = Request {
            principal: &who, route: ROUTES[route], method: METHODS[method], path: &path, source_ip, now,
        };
        let before = policy.evaluate(&req);
        let effective: Vec<String> = policy.roles_of(&who).map(str::to_owned).collect();

        // A deny rule that matches this request, in one of several shapes.
        let literal = path.trim_end_matches('/');
        let literal = if literal.is_empty() { "/" } else { literal };
        let deny = match deny_shape {
            0 => format!("{{ id: zz-deny, effect: deny, route: {}, methods: [{}], path: \"{literal}\" }}", ROUTES[route], METHODS[method]),
            1 => format!("{{ id: zz-deny, effect: deny, route: {} }}", ROUTES[route]),
            2 => format!("{{ id: zz-deny, effect: deny, routes: [{}, zz], path: \"/**\", when: {{ source_ip: [\"{}\"] }} }}", ROUTES[route], source_ip.to_canonical()),
            _ => match effective.first() {
                Some(role) => format!("{{ id: zz-deny, effect: deny, roles: [{role}], route: {}, path: \"{literal}\" }}", ROUTES[route]),
                None => format!("{{ id: zz-deny, effect: deny, route: {}, path: \"{literal}\" }}", ROUTES[route]),
            },
        };
        let with_deny = format!("{base}  - {deny}\n");
        let after = load(&with_deny).evaluate(&req);
        prop_assert!(!after.is_allowed(), "before: {}\nafter: {}", before.explain(), after.explain());
        prop_assert_eq!(after.reason_code(), "explicit_deny");
        if before.is_allowed() {
            prop_assert_eq!(after.rule(), Some("zz-deny"));
        }
    }

    #[test]
    fn a_policy_written_as_json_decides_as_its_yaml_form(
        edges in prop::collection::vec((0..4usize, 0..4usize), 0..6),
        rules in prop::collection::vec(rule_spec(), 0..12),
        who in principal(),
        route in 0..ROUTES.len(),
        method in 0..METHODS.len(),
        path in req_path(),
        source_ip in ip(),
        now in timestamp(),
    ) {
        let yaml = policy_yaml(&edges, &rules);
        let value: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        let json = serde_json::to_string_pretty(&value).unwrap();
        let from_yaml = load(&yaml);
        let from_json = load(&json);
        prop_assert_eq!(from_yaml.revision(), from_json.revision());
        let req = Request {
            principal: &who, route: ROUTES[route], method: METHODS[method], path: &path, source_ip, now,
        };
        let a = from_yaml.evaluate(&req);
        let b = from_json.evaluate(&req);
        prop_assert_eq!(a.is_allowed(), b.is_allowed());
        prop_assert_eq!(a.rule(), b.rule());
        prop_assert_eq!(a.explain(), b.explain());
    }

    #[test]
    fn inheritance_is_transitive(
        n in 1usize..10,
        raw_edges in prop::collection::vec((0usize..10, 0usize..10), 0..20),
        start in 0usize..10,
    ) {
        let start = start % n;
        // Edges point from a role to a higher-numbered role: no cycles.
        let edges: Vec<(usize, usize)> = raw_edges
            .into_iter()
            .map(|(a, b)| (a % n, b % n))
            .filter(|(a, b)| a < b)
            .collect();
        let mut s = String::from("revision: 1\nroles:\n");
        // Declare in reverse to show order does not matter.
        for r in (0..n).rev() {
            let parents: Vec<String> = edges.iter().filter(|(a, _)| *a == r).map(|(_, b)| format!("r{b}")).collect();
            let _ = writeln!(s, "  r{r}: {{ inherits: [{}] }}", parents.join(", "));
        }
        let _ = writeln!(s, "bindings:\n  - {{ role: r{start}, spiffe_id: \"{}\" }}", IDS[0]);
        s.push_str("rules:\n");
        for r in 0..n {
            let _ = writeln!(s, "  - {{ id: p{r}, effect: allow, roles: [r{r}], route: a, path: /p{r} }}");
        }
        let policy = load(&s);

        // Expected: everything reachable from `start`.
        let mut reach = vec![false; n];
        let mut todo = vec![start];
        while let Some(r) = todo.pop() {
            if !std::mem::replace(&mut reach[r], true) {
                todo.extend(edges.iter().filter(|(a, _)| *a == r).map(|(_, b)| *b));
            }
        }
        let who = spiffe(IDS[0]);
        for (k, reachable) in reach.iter().enumerate() {
            let path = format!("/p{k}");
            let req = Request {
                principal: &who, route: "a", method: "GET", path: &path,
                source_ip: "10.0.0.1".parse().unwrap(), now: Timestamp::UNIX_EPOCH,
            };
            let d = policy.evaluate(&req);
            prop_assert_eq!(d.is_allowed(), *reachable, "role r{} path {}: {}", start, path, d.explain());
        }
        let expected: Vec<String> = {
            let mut v: Vec<String> = (0..n).filter(|k| reach[*k]).map(|k| format!("r{k}")).collect();
            v.sort();
            v
        };
        prop_assert_eq!(policy.roles_of(&who).map(str::to_owned).collect::<Vec<_>>(), expected);
    }
}

#[test]
fn a_role_inheriting_a_chain_gets_every_permission_down_the_chain() {
    let n = 50;
    let mut s = String::from("revision: 1\nroles:\n");
    for r in 0..n {
        if r + 1 < n {
            let _ = writeln!(s, "  r{r}: {{ inherits: [r{}] }}", r + 1);
        } else {
            let _ = writeln!(s, "  r{r}: {{}}");
        }
    }
    let _ = writeln!(
        s,
        "bindings:\n  - {{ role: r0, spiffe_id: \"{}\" }}",
        IDS[0]
    );
    let _ = writeln!(s, "  - {{ role: r25, spiffe_id: \"{}\" }}", IDS[1]);
    s.push_str("rules:\n");
    for r in 0..n {
        let _ = writeln!(
            s,
            "  - {{ id: p{r}, effect: allow, roles: [r{r}], route: a, path: /p{r} }}"
        );
    }
    let policy = load(&s);
    let top = spiffe(IDS[0]);
    let mid = spiffe(IDS[1]);
    for k in 0..n {
        let path = format!("/p{k}");
        let ask = |who: &Principal| {
            policy
                .evaluate(&Request {
                    principal: who,
                    route: "a",
                    method: "GET",
                    path: &path,
                    source_ip: "10.0.0.1".parse().unwrap(),
                    now: Timestamp::UNIX_EPOCH,
                })
                .is_allowed()
        };
        assert!(ask(&top), "r0 must reach p{k}");
        assert_eq!(ask(&mid), k >= 25, "r25 and p{k}");
    }
}
