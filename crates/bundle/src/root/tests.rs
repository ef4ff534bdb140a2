use super::*;
use crate::test_util::{bundle, key, now, root, spec, ts};
use crate::SigningKey;

fn json_root(keys: &str, threshold: u64) -> String {
    format!(
        r#"{{"format":"portcullis-trust-root-v1","version":1,"threshold":{threshold},"keys":[{keys}]}}"#
    )
}

fn key_json(id: &str, k: &SigningKey) -> String {
    format!(
        r#"{{"id":"{id}","alg":"{}","public_key":{},"not_before":"2024-01-01T00:00:00Z","not_after":"2030-01-01T00:00:00Z"}}"#,
        k.alg(),
        serde_json::to_string(&k.public_key_pem()).unwrap()
    )
}

fn bad(json: &str) -> &'static str {
    TrustRoot::from_json(json.as_bytes()).unwrap_err().reason()
}

#[test]
fn a_valid_root_parses_and_keeps_its_bytes() {
    let (a, b) = (key(), SigningKey::generate(SigAlg::Ed25519).unwrap());
    let json = json_root(&format!("{},{}", key_json("a", &a), key_json("b.2", &b)), 2);
    let r = TrustRoot::from_json(json.as_bytes()).unwrap();
    assert_eq!(r.version(), 1);
    assert_eq!(r.threshold(), 2);
    assert_eq!(r.key_ids(), ["a", "b.2"]);
    assert_eq!(r.bytes(), json.as_bytes());
    let infos: Vec<_> = r.keys().collect();
    assert_eq!(infos[1].alg, SigAlg::Ed25519);
    assert_eq!(infos[0].not_after, ts("2030-01-01T00:00:00Z"));
}

#[test]
fn create_writes_a_root_that_parses_back() {
    let k = key();
    let r = root(4, 1, &[("ops-1", &k)]);
    assert_eq!(r.version(), 4);
    let again = TrustRoot::from_json(r.bytes()).unwrap();
    assert_eq!(again.key_ids(), ["ops-1"]);
    assert!(r.bytes().ends_with(b"}\n"));
}

#[test]
fn invalid_roots_are_refused() {
    let (a, b) = (key(), key());
    let ka = key_json("a", &a);
    assert_eq!(bad(&json_root(&ka, 0)), "bad_trust_root", "threshold 0");
    assert_eq!(
        bad(&json_root(&ka, 2)),
        "bad_trust_root",
        "threshold above keys"
    );
    assert_eq!(bad(&json_root("", 1)), "bad_trust_root", "no keys");
    assert_eq!(
        bad(&json_root(&format!("{ka},{}", key_json("a", &b)), 1)),
        "bad_trust_root",
        "duplicate id"
    );
    assert_eq!(
        bad(&json_root(&key_json("A", &a), 1)),
        "bad_trust_root",
        "uppercase id"
    );
    assert_eq!(
        bad(&json_root(&key_json(&"a".repeat(65), &a), 1)),
        "bad_trust_root",
        "long id"
    );
    assert_eq!(
        bad(&json_root(&ka.replace("ecdsa-p256", "ed25519"), 1)),
        "bad_trust_root",
        "algorithm does not fit the key"
    );
    assert_eq!(
        bad(&json_root(&ka.replace("ecdsa-p256", "rsa"), 1)),
        "bad_trust_root",
        "unknown algorithm"
    );
    assert_eq!(
        bad(&json_root(&ka.replace("MFkw", "MFkx"), 1)),
        "bad_trust_root",
        "key does not parse"
    );
    assert_eq!(
        bad(&json_root(&ka.replace("2030-01-01", "2023-01-01"), 1)),
        "bad_trust_root",
        "window ends before it starts"
    );
    assert_eq!(
        bad(&json_root(&ka.replace("2030-01-01T00:00:00Z", "soon"), 1)),
        "bad_trust_root",
        "bad time"
    );
    assert_eq!(
        bad(&json_root(&ka, 1).replace("\"version\":1", "\"version\":0")),
        "bad_trust_root"
    );
    assert_eq!(
        bad(&json_root(&ka, 1).replace("-v1", "-v2")),
        "bad_trust_root"
    );
    assert_eq!(
        bad(&json_root(&ka, 1).replace("\"threshold\"", "\"extra\":1,\"threshold\"")),
        "bad_trust_root",
        "unknown field"
    );
    assert_eq!(
        bad(&json_root(&ka.replacen("{", "{\"comment\":\"x\",", 1), 1)),
        "bad_trust_root",
        "unknown key field"
    );
    assert_eq!(
        bad(&json_root(&ka, 1).replace("\"threshold\":1", "\"threshold\":1,\"threshold\":2")),
        "duplicate_member"
    );
}

#[test]
fn one_public_key_under_two_ids_is_refused() {
    // Otherwise one signer could meet a threshold of two.
    let a = key();
    let json = json_root(&format!("{},{}", key_json("a", &a), key_json("b", &a)), 2);
    assert_eq!(bad(&json), "bad_trust_root");
}

#[test]
fn non_canonical_public_keys_are_refused() {
    // The same P-256 key as a compressed point is a second spelling of it.
    let a = key();
    let der = crate::pem::parse_one(&a.public_key_pem(), "PUBLIC KEY").unwrap();
    assert_eq!(der.len(), 91);
    let (x, y) = (&der[27..59], &der[59..91]);
    let mut compressed = vec![0x30, 0x39];
    compressed.extend_from_slice(&der[2..23]); // algorithm identifier
    compressed.extend_from_slice(&[0x03, 0x22, 0x00, 0x02 | (y[31] & 1)]);
    compressed.extend_from_slice(x);
    assert!(
        aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &compressed
        )
        .is_ok(),
        "the compressed form is itself a valid key"
    );
    let pem_text = crate::pem::encode("PUBLIC KEY", &compressed);
    let ka = key_json("a", &a).replace(
        &serde_json::to_string(&a.public_key_pem()).unwrap(),
        &serde_json::to_string(&*pem_text).unwrap(),
    );
    assert_eq!(bad(&json_root(&ka, 1)), "bad_trust_root");
}

#[test]
fn oversized_root_is_refused() {
    assert_eq!(bad(&" ".repeat(MAX_ROOT_BYTES + 1)), "bad_trust_root");
}

#[test]
fn each_key_counts_once() {
    let a = key();
    let r = root(1, 2, &[("a", &a), ("b", &key())]);
    let sig = a.sign(b"message").unwrap();
    let twice = [("a", &sig[..]), ("a", &sig[..])];
    let err = r.count(b"message", twice.into_iter(), now()).unwrap_err();
    assert_eq!(err.reason(), "too_few_signatures");
}

#[test]
fn a_signature_counts_only_inside_its_window() {
    let a = key();
    let r = TrustRoot::create(
        1,
        1,
        &[spec(
            "a",
            &a,
            "2025-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        )],
    )
    .unwrap();
    let sig = a.sign(b"m").unwrap();
    let at = |t: &str| r.count(b"m", [("a", &sig[..])].into_iter(), ts(t));
    assert_eq!(
        at("2024-12-31T23:59:59Z").unwrap_err().reason(),
        "key_not_yet_valid"
    );
    assert_eq!(
        at("2025-01-01T00:00:00Z").unwrap(),
        ["a"],
        "not_before is inclusive"
    );
    assert_eq!(at("2025-12-31T23:59:59Z").unwrap(), ["a"]);
    assert_eq!(
        at("2026-01-01T00:00:00Z").unwrap_err().reason(),
        "expired_key",
        "not_after is exclusive"
    );
}

#[test]
fn verify_reports_signers_revision_and_digest() {
    let (a, b) = (key(), key());
    let r = root(1, 1, &[("a", &a), ("b", &b)]);
    let mut bun = bundle(9);
    bun.sign("b", &b).unwrap();
    bun.sign("a", &a).unwrap();
    let v = r.verify(&bun, now()).unwrap();
    assert_eq!(v.signers, ["a", "b"]);
    assert_eq!(v.revision, 9);
    assert_eq!(v.digest, bun.digest());
    assert!(v.new_root.is_none());
}

#[test]
fn an_update_identical_to_the_current_root_is_a_no_op() {
    let a = key();
    let r = root(1, 1, &[("a", &a)]);
    let mut bun = bundle(1);
    bun.sign("a", &a).unwrap();
    bun.set_root_update(r.bytes().to_vec(), vec![]);
    assert!(r.verify(&bun, now()).unwrap().new_root.is_none());
}

#[test]
fn an_update_that_is_not_newer_is_refused() {
    let a = key();
    let current = root(2, 1, &[("a", &a)]);
    let same_version = root(2, 1, &[("a", &a), ("b", &key())]);
    let older = root(1, 1, &[("a", &a)]);
    for update in [same_version, older] {
        let mut bun = bundle(1);
        bun.sign("a", &a).unwrap();
        let sig = a.sign(update.bytes()).unwrap();
        bun.set_root_update(update.bytes().to_vec(), vec![("a".to_owned(), sig)]);
        let err = current.verify(&bun, now()).unwrap_err();
        assert_eq!(err.reason(), "root_update_refused");
    }
}

#[test]
fn a_malformed_update_refuses_the_bundle() {
    let a = key();
    let current = root(1, 1, &[("a", &a)]);
    let mut bun = bundle(1);
    bun.sign("a", &a).unwrap();
    let junk = b"{\"format\":1}".to_vec();
    let sig = a.sign(&junk).unwrap();
    bun.set_root_update(junk, vec![("a".to_owned(), sig)]);
    let err = current.verify(&bun, now()).unwrap_err();
    assert_eq!(err.reason(), "root_update_refused");
    assert!(err
        .to_string()
        .starts_with("trust root update refused: bad trust root"));
}

#[test]
fn debug_shows_ids_not_keys() {
    let a = key();
    let r = root(1, 1, &[("a", &a)]);
    let debug = format!("{r:?}");
    assert!(debug.contains("\"a\""));
    assert!(!debug.contains("BEGIN"));
}
