//! Project Wycheproof vectors (C2SP) against the verifier.
//!
//! JOSE files: every `valid` JWS must verify and every `invalid` one must
//! be refused, through `KeySet::from_jwks_json` and `verify_signature`
//! (signature and key checks only; these payloads are not JWTs). A valid
//! case we deliberately do not support must be listed with a reason in
//! `wycheproof-unsupported.txt`; the list may not hold stale entries.
//!
//! Signature files: every case goes through `VerifyingKey::verify`, the
//! one-signature primitive behind `verify`: valid accepted, invalid
//! refused, acceptable either way.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "helpers outside #[test] functions fail the test on any setup error"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_token::{verify_signature, Alg, KeySet, VerifyingKey};
use serde_json::{json, Value};

/// Overrides where the Wycheproof `testvectors_v1` files are read from.
const ENV_VAR: &str = "PORTCULLIS_WYCHEPROOF_DIR";

fn data_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_VAR) {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/wycheproof")
}

fn load(name: &str) -> Value {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the Wycheproof suite is needed for this test but `{}` cannot be read ({e}); \
             set {ENV_VAR} to the directory holding its files",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `file tcId` -> reason, from the checked-in list.
fn unsupported() -> BTreeMap<(String, u64), String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wycheproof-unsupported.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ' ');
        let file = fields.next().unwrap().to_owned();
        let id: u64 = fields.next().unwrap().parse().unwrap();
        let reason = fields.next().unwrap_or("").trim().to_owned();
        assert!(!reason.is_empty(), "entry without a reason: {line}");
        assert!(
            out.insert((file, id), reason).is_none(),
            "duplicate entry: {line}"
        );
    }
    out
}

#[derive(Default, Debug)]
struct Counts {
    valid_accepted: usize,
    invalid_refused: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
    valid_unsupported: usize,
}

/// The key set a JOSE test group verifies with: its public key (set) if
/// it has one, else its private one (which we must refuse or skip).
fn group_keys(group: &Value) -> Value {
    let jwk = group
        .get("public")
        .or_else(|| group.get("private"))
        .unwrap();
    if jwk.get("keys").is_some() {
        jwk.clone()
    } else {
        json!({ "keys": [jwk] })
    }
}

fn run_jose(
    file: &str,
    unsupported: &BTreeMap<(String, u64), String>,
    used: &mut BTreeSet<(String, u64)>,
) -> Counts {
    let doc = load(file);
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        let jwks = serde_json::to_vec(&group_keys(group)).unwrap();
        let keys = KeySet::from_jwks_json(&jwks);
        for case in group["tests"].as_array().unwrap() {
            cases += 1;
            let id = case["tcId"].as_u64().unwrap();
            let result = case["result"].as_str().unwrap();
            let jws = match &case["jws"] {
                Value::String(s) => s.clone(),
                // JSON serialization: hand it over as text, it must fail.
                other => other.to_string(),
            };
            let outcome = match &keys {
                Err(e) => Err(format!("key set: {e:?}")),
                Ok((keys, _)) => verify_signature(&jws, keys, &Alg::ALL)
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", e.reason())),
            };
            let key = (file.to_owned(), id);
            if std::env::var_os("WYCHEPROOF_VERBOSE").is_some() {
                println!("{file} {id} {result}: {outcome:?}");
            }
            match (result, &outcome) {
                ("valid", Ok(())) => counts.valid_accepted += 1,
                ("invalid", Err(_)) => counts.invalid_refused += 1,
                ("acceptable", Ok(())) => counts.acceptable_accepted += 1,
                ("acceptable", Err(_)) => counts.acceptable_refused += 1,
                ("valid", Err(why)) if unsupported.contains_key(&key) => {
                    counts.valid_unsupported += 1;
                    used.insert(key);
                    let _ = why;
                }
                _ => failures.push(format!(
                    "{file} tcId {id} ({}) expected {result}, got {outcome:?}",
                    case["comment"]
                )),
            }
        }
    }
    assert_eq!(cases, doc["numberOfTests"].as_u64().unwrap() as usize);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    counts
}

#[test]
fn jose_vectors() {
    let unsupported = unsupported();
    let mut used = BTreeSet::new();
    for file in ["json_web_signature_test.json", "json_web_key_test.json"] {
        let c = run_jose(file, &unsupported, &mut used);
        println!(
            "{file}: {} valid accepted, {} invalid refused, {} valid listed as unsupported",
            c.valid_accepted, c.invalid_refused, c.valid_unsupported
        );
        assert!(c.valid_accepted > 0);
        assert!(c.invalid_refused > 0);
    }
    let stale: Vec<_> = unsupported.keys().filter(|k| !used.contains(*k)).collect();
    assert!(stale.is_empty(), "stale unsupported entries: {stale:?}");
}

/// The JWK of a signature-file group, built from the raw key when the
/// file has no JWK form.
fn signature_group_jwk(group: &Value) -> Value {
    if let Some(jwk) = group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
        return jwk.clone();
    }
    let pk = &group["publicKey"];
    let crv = match pk["curve"].as_str().unwrap() {
        "secp256r1" => "P-256",
        "secp384r1" => "P-384",
        other => panic!("no jwk and unknown curve {other}"),
    };
    json!({
        "kty": "EC",
        "crv": crv,
        "x": URL_SAFE_NO_PAD.encode(hex(pk["wx"].as_str().unwrap())),
        "y": URL_SAFE_NO_PAD.encode(hex(pk["wy"].as_str().unwrap())),
    })
}

fn run_signatures(file: &str, alg: Alg) -> Counts {
    let doc = load(file);
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        let jwk = serde_json::to_vec(&signature_group_jwk(group)).unwrap();
        let key = VerifyingKey::from_jwk_json(&jwk);
        for case in group["tests"].as_array().unwrap() {
            cases += 1;
            let id = case["tcId"].as_u64().unwrap();
            let result = case["result"].as_str().unwrap();
            let msg = hex(case["msg"].as_str().unwrap());
            let sig = hex(case["sig"].as_str().unwrap());
            let outcome = match &key {
                Err(e) => Err(format!("key: {e}")),
                Ok(key) => key.verify(alg, &msg, &sig).map_err(|e| e.to_string()),
            };
            match (result, &outcome) {
                ("valid", Ok(())) => counts.valid_accepted += 1,
                ("invalid", Err(_)) => counts.invalid_refused += 1,
                ("acceptable", Ok(())) => counts.acceptable_accepted += 1,
                ("acceptable", Err(_)) => counts.acceptable_refused += 1,
                _ => failures.push(format!(
                    "{file} tcId {id} ({}) expected {result}, got {outcome:?}",
                    case["comment"]
                )),
            }
        }
    }
    assert_eq!(cases, doc["numberOfTests"].as_u64().unwrap() as usize);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{file}: {} valid accepted, {} invalid refused, acceptable {} accepted / {} refused",
        counts.valid_accepted,
        counts.invalid_refused,
        counts.acceptable_accepted,
        counts.acceptable_refused
    );
    counts
}

#[test]
fn ecdsa_p256_p1363() {
    let c = run_signatures("ecdsa_secp256r1_sha256_p1363_test.json", Alg::Es256);
    assert!(c.valid_accepted > 0 && c.invalid_refused > 0);
}

#[test]
fn ecdsa_p384_p1363() {
    let c = run_signatures("ecdsa_secp384r1_sha384_p1363_test.json", Alg::Es384);
    assert!(c.valid_accepted > 0 && c.invalid_refused > 0);
}

#[test]
fn rsa_pkcs1_2048_sha256() {
    let c = run_signatures("rsa_signature_2048_sha256_test.json", Alg::Rs256);
    assert!(c.valid_accepted > 0 && c.invalid_refused > 0);
}

#[test]
fn rsa_pss_2048_sha256() {
    let c = run_signatures("rsa_pss_2048_sha256_mgf1_32_test.json", Alg::Ps256);
    assert!(c.valid_accepted > 0 && c.invalid_refused > 0);
}

#[test]
fn ed25519() {
    let c = run_signatures("ed25519_test.json", Alg::EdDsa);
    assert!(c.valid_accepted > 0 && c.invalid_refused > 0);
}
