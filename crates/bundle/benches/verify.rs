//! Cost of receiving a bundle: parse the archive (limits, paths, SHA-256 of
//! every file against the manifest) and verify two ECDSA P-256 signatures,
//! for a policy of 10 000 rules (a 1.6 MB archive).

#![expect(clippy::unwrap_used, reason = "benchmark setup fails loudly")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_bundle::{Bundle, Limits, RootKeySpec, SigAlg, SigningKey, TrustRoot};

const RULES: usize = 10_000;
const ROLES: usize = 100;

fn policy_yaml() -> String {
    let mut y = String::from("revision: \"bench-1\"\nroles:\n");
    for r in 0..ROLES {
        let _ = writeln!(
            y,
            "  role-{r:03}: {{ description: \"generated role {r}\" }}"
        );
    }
    y.push_str("bindings:\n");
    for r in 0..ROLES {
        let _ = writeln!(
            y,
            "  - {{ role: role-{r:03}, spiffe_id_prefix: \"spiffe://example.org/ns/team-{r:03}\" }}"
        );
    }
    y.push_str("rules:\n");
    for i in 0..RULES {
        let _ = write!(
            y,
            "  - id: rule-{i:05}\n    effect: {}\n    roles: [role-{:03}]\n    route: api\n    methods: [GET, HEAD, POST]\n    path: \"/api/tenants/{{tenant}}/collection-{i:05}/**\"\n",
            if i % 10 == 0 { "deny" } else { "allow" },
            i % ROLES
        );
    }
    y
}

fn setup() -> (Vec<u8>, TrustRoot, jiff::Timestamp) {
    let policy = policy_yaml();
    let files = BTreeMap::from([
        ("policy.yaml".to_owned(), policy.into_bytes()),
        ("tests/smoke.yaml".to_owned(), b"cases: []\n".to_vec()),
    ]);
    let now: jiff::Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
    let mut bundle = Bundle::from_files(files, 1, "policy.yaml", now).unwrap();
    let keys: Vec<_> = (0..2)
        .map(|_| SigningKey::generate(SigAlg::EcdsaP256).unwrap())
        .collect();
    let mut specs = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let id = format!("ops-{n}");
        bundle.sign(&id, key).unwrap();
        specs.push(RootKeySpec {
            id,
            alg: key.alg(),
            public_key: key.public_key_pem(),
            not_before: "2024-01-01T00:00:00Z".parse().unwrap(),
            not_after: "2030-01-01T00:00:00Z".parse().unwrap(),
        });
    }
    let root = TrustRoot::create(1, 2, &specs).unwrap();
    (bundle.to_tar().unwrap(), root, now)
}

fn bench(c: &mut Criterion) {
    let (archive, root, now) = setup();
    eprintln!(
        "bundle archive: {} bytes, policy: {} rules",
        archive.len(),
        RULES
    );
    let limits = Limits::default();
    let loaded = Bundle::from_tar(&archive, &limits).unwrap();
    assert_eq!(root.verify(&loaded, now).unwrap().signers.len(), 2);

    let mut group = c.benchmark_group("bundle_10k_rules");
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| {
            let bundle = Bundle::from_tar(black_box(&archive), &limits).unwrap();
            root.verify(&bundle, now).unwrap()
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| Bundle::from_tar(black_box(&archive), &limits).unwrap())
    });
    group.bench_function("verify_signatures_only", |b| {
        b.iter(|| root.verify(black_box(&loaded), now).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
