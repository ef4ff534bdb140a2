//! Cost of one decision as the policy grows from 10 to 100 000 rules.
//!
//! Policies are generated: several roles with inheritance, prefix and exact
//! bindings, rules spread over many routes with `{param}` patterns, some
//! with conditions and some deny rules. "hit" asks for the last rule in the
//! file; "miss" asks for a path on the same route that no rule covers.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jiff::Timestamp;
use portcullis_identity::{CertIdentity, Principal, SpiffeId, Thumbprint};
use portcullis_policy::{Policy, Request};

const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
const ROLES: [&str; 8] = [
    "reader", "writer", "admin", "auditor", "billing", "support", "ops", "ci",
];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const RESOURCES: [&str; 6] = ["orders", "invoices", "users", "items", "reports", "events"];
/// Rules per route: a few dozen, like a real service.
const RULES_PER_ROUTE: usize = 40;

fn pick<'a>(list: &[&'a str], i: usize) -> &'a str {
    list.get(i % list.len()).copied().unwrap_or("x")
}

fn generate(n: usize) -> (String, String) {
    let routes = n.div_ceil(RULES_PER_ROUTE).max(1);
    let mut s = String::with_capacity(n * 200);
    s.push_str("revision: bench\nroles:\n");
    s.push_str("  reader: {}\n  writer: { inherits: [reader] }\n  admin: { inherits: [writer] }\n");
    s.push_str(
        "  auditor: {}\n  billing: { inherits: [reader] }\n  support: { inherits: [reader] }\n",
    );
    s.push_str("  ops: { inherits: [admin] }\n  ci: { inherits: [writer] }\n");
    s.push_str("bindings:\n");
    s.push_str("  - { role: reader, spiffe_id_prefix: \"spiffe://example.org/tenant\" }\n");
    for i in 0..(n / 10).max(4) {
        let _ = writeln!(
            s,
            "  - {{ role: {}, spiffe_id: \"spiffe://example.org/ns/n{i}/sa/w{i}\" }}",
            pick(&ROLES, i)
        );
    }
    s.push_str("rules:\n");
    for i in 0..n - 1 {
        let route = i % routes;
        let res = pick(&RESOURCES, i / routes);
        let version = i / (routes * RESOURCES.len());
        let effect = if i % 13 == 12 { "deny" } else { "allow" };
        let _ = write!(
            s,
            "  - {{ id: r{i}, effect: {effect}, roles: [{}, {}], route: svc{route}, methods: [{}], path: \"/api/v{version}/{res}/{{tenant}}/items/{{id}}\"",
            pick(&ROLES, i),
            pick(&ROLES, i / 3 + 1),
            pick(&METHODS, i),
        );
        match i % 5 {
            0 => s.push_str(", when: { source_ip: [\"10.0.0.0/8\", \"2001:db8::/32\"] }"),
            1 => s.push_str(", when: { equal: { tenant: \"spiffe.segment[1]\" } }"),
            2 => s.push_str(
                ", when: { time: { days: [mon, tue, wed, thu, fri], from: \"08:00\", to: \"18:00\", tz: Europe/Berlin } }",
            ),
            _ => {}
        }
        s.push_str(" }\n");
    }
    // The hit: last in the file, on a route shared with other rules.
    let route = (n - 1) % routes;
    let _ = writeln!(
        s,
        "  - {{ id: target, effect: allow, roles: [reader], route: svc{route}, methods: [GET, HEAD], path: \"/api/v1/orders/{{tenant}}/orders/{{id}}/**\", when: {{ source_ip: [\"10.0.0.0/8\"], equal: {{ tenant: \"spiffe.segment[1]\" }} }} }}"
    );
    (s, format!("svc{route}"))
}

fn principal() -> Principal {
    Principal::from_cert(CertIdentity {
        spiffe_id: Some(
            SpiffeId::parse("spiffe://example.org/tenant/acme/sa/web").expect("valid SPIFFE ID"),
        ),
        subject: "CN=web,O=Acme".to_owned(),
        issuer: "CN=Example Intermediate CA".to_owned(),
        subject_attrs: vec![("CN".to_owned(), "web".to_owned())],
        dns_sans: Vec::new(),
        email_sans: Vec::new(),
        thumbprint: Thumbprint([7; 32]),
    })
}

fn bench(c: &mut Criterion) {
    let who = principal();
    let ip: IpAddr = "10.1.2.3".parse().expect("valid address");
    let now: Timestamp = "2026-12-04T10:00:00Z".parse().expect("valid time");
    let mut group = c.benchmark_group("decision");
    for n in SIZES {
        let (yaml, route) = generate(n);
        let policy = Policy::from_yaml(&yaml).expect("generated policy loads");
        assert_eq!(policy.rule_count(), n);
        let hit = Request {
            principal: &who,
            route: &route,
            method: "GET",
            path: "/api/v1/orders/acme/orders/42/lines/3",
            source_ip: ip,
            now,
        };
        let miss = Request {
            path: "/api/v1/orders/acme/unknown/42",
            ..hit
        };
        let d = policy.evaluate(&hit);
        assert!(
            d.is_allowed() && d.rule() == Some("target"),
            "{}",
            d.explain()
        );
        assert!(!policy.evaluate(&miss).is_allowed());

        group.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, req| {
            b.iter(|| policy.evaluate(black_box(req)));
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, req| {
            b.iter(|| policy.evaluate(black_box(req)));
        });
    }
    group.finish();
}

/// Compiling a policy: what activating a new bundle costs besides its
/// signature check.
fn compile(c: &mut Criterion) {
    let (yaml, _) = generate(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000_rules", |b| {
        b.iter(|| Policy::from_yaml(black_box(&yaml)).expect("generated policy loads"));
    });
    // The same policy written as JSON (read by the JSON parser).
    let value: serde_json::Value = serde_norway::from_str(&yaml).expect("generated YAML");
    let json = serde_json::to_string(&value).expect("JSON");
    group.bench_function("10000_rules_json", |b| {
        b.iter(|| Policy::from_yaml(black_box(&json)).expect("generated policy loads"));
    });
    group.finish();
}

criterion_group!(benches, bench, compile);
criterion_main!(benches);
