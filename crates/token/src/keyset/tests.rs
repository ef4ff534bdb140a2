use serde_json::{json, Value};

use super::*;
use crate::test_util::{jwks_json, rsa_pair, rsa_pair_2, rsa_public_jwk, TestKey};

/// A ROCA-vulnerable 2048-bit modulus (public test data from Project
/// Wycheproof, `json_web_key_test.json`).
const ROCA_N: &str = "AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPrId7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE";

fn load(keys: &[Value]) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
    KeySet::from_jwks_json(&jwks_json(keys))
}

fn es256() -> TestKey {
    TestKey::new(Alg::Es256, Some("ec-1"))
}

/// Loads `bad` next to a good key and returns why `bad` was skipped.
fn skip_reason(bad: Value) -> String {
    let good = es256().jwk();
    let (set, skipped) = load(&[good, bad]).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].index, 1);
    skipped[0].reason.clone()
}

fn rsa_jwk_with(n: &str, e: &str) -> Value {
    json!({"kty": "RSA", "kid": "r", "n": n, "e": e})
}

#[test]
fn loads_every_key_type() {
    let keys = [
        TestKey::new(Alg::Es256, Some("a")),
        TestKey::new(Alg::Es384, Some("b")),
        TestKey::new(Alg::EdDsa, Some("c")),
        TestKey::new(Alg::Rs256, Some("d")),
    ];
    let jwks: Vec<Value> = keys.iter().map(TestKey::jwk).collect();
    let (set, skipped) = load(&jwks).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(set.len(), 4);
    assert!(!set.is_empty());
    assert_eq!(
        set.kids().collect::<Vec<_>>(),
        vec![Some("a"), Some("b"), Some("c"), Some("d")]
    );
    assert_eq!(set.get("a").unwrap().key_type(), "EC P-256");
    assert_eq!(set.get("b").unwrap().key_type(), "EC P-384");
    assert_eq!(set.get("c").unwrap().key_type(), "OKP Ed25519");
    assert_eq!(set.get("d").unwrap().key_type(), "RSA");
    assert!(set.get("d").unwrap().supports(Alg::Rs256));
    assert!(!set.get("d").unwrap().supports(Alg::Ps256));
    assert!(set.get("zzz").is_none());
}

#[test]
fn rsa_key_without_alg_supports_every_rsa_alg() {
    let mut jwk = rsa_public_jwk(rsa_pair());
    jwk["kid"] = json!("r");
    let (set, _) = load(&[jwk]).unwrap();
    let key = set.get("r").unwrap();
    assert_eq!(key.alg(), None);
    for alg in Alg::RSA {
        assert!(key.supports(alg), "{alg}");
    }
    assert!(!key.supports(Alg::Es256));
    assert!(!key.supports(Alg::EdDsa));
}

#[test]
fn ec_key_supports_only_its_curve() {
    let (set, _) = load(&[es256().jwk()]).unwrap();
    let key = set.get("ec-1").unwrap();
    assert!(key.supports(Alg::Es256));
    assert!(!key.supports(Alg::Es384));
    assert!(!key.supports(Alg::Rs256));
}

#[test]
fn version_is_stable_across_reparse_and_key_order() {
    let a = es256().jwk();
    let b = TestKey::new(Alg::EdDsa, Some("ed")).jwk();
    let (s1, _) = load(&[a.clone(), b.clone()]).unwrap();
    let (s2, _) = load(&[a.clone(), b.clone()]).unwrap();
    let (s3, _) = load(&[b, a]).unwrap();
    assert_eq!(s1.version(), s2.version());
    assert_eq!(s1.version(), s3.version());
}

#[test]
fn version_changes_when_a_key_changes() {
    let a = es256().jwk();
    let b = TestKey::new(Alg::EdDsa, Some("ed")).jwk();
    let (one, _) = load(std::slice::from_ref(&a)).unwrap();
    let (two, _) = load(&[a.clone(), b]).unwrap();
    assert_ne!(one.version(), two.version());
    let mut renamed = a.clone();
    renamed["kid"] = json!("ec-2");
    let (three, _) = load(&[renamed]).unwrap();
    assert_ne!(one.version(), three.version());
    let mut no_alg = a;
    no_alg.as_object_mut().unwrap().remove("alg");
    let (four, _) = load(&[no_alg]).unwrap();
    assert_ne!(one.version(), four.version());
}

#[test]
fn version_ignores_skipped_keys() {
    let a = es256().jwk();
    let (one, _) = load(std::slice::from_ref(&a)).unwrap();
    let oct = json!({"kty": "oct", "kid": "h", "k": "AAAA"});
    let (two, skipped) = load(&[a, oct]).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(one.version(), two.version());
}

#[test]
fn version_debug_is_short_hex() {
    let (set, _) = load(&[es256().jwk()]).unwrap();
    let v = set.version();
    let dbg = format!("{v:?}");
    assert!(dbg.starts_with("KeySetVersion("), "{dbg}");
    assert_eq!(v.short_hex().len(), 16);
    assert_eq!(v.to_string(), v.short_hex());
    assert_eq!(&v.as_bytes()[..1], &hex_byte(&v.short_hex()[..2]));
}

fn hex_byte(s: &str) -> [u8; 1] {
    [u8::from_str_radix(s, 16).unwrap()]
}

#[test]
fn leading_zeros_in_modulus_are_ignored() {
    let plain = rsa_public_jwk(rsa_pair());
    let n = b64::decode(plain["n"].as_str().unwrap()).unwrap();
    let mut padded_n = vec![0];
    padded_n.extend_from_slice(&n);
    let mut padded = plain.clone();
    padded["n"] = json!(b64::encode(&padded_n));
    let (a, _) = load(&[plain]).unwrap();
    let (b, _) = load(&[padded]).unwrap();
    assert_eq!(a.version(), b.version());
}

#[test]
fn private_key_refuses_the_whole_set() {
    let mut private = TestKey::new(Alg::Es256, Some("p")).jwk();
    private["d"] = json!("AAAA");
    let err = load(&[es256().jwk(), private]).unwrap_err();
    assert_eq!(
        err,
        JwksError::PrivateKey {
            index: 1,
            member: "d"
        }
    );
    assert_eq!(err.reason(), "private_key");
}

#[test]
fn rsa_private_members_refuse_the_whole_set() {
    for member in ["p", "q", "dp", "dq", "qi", "oth"] {
        let mut jwk = rsa_public_jwk(rsa_pair());
        jwk[member] = json!("AQAB");
        let err = load(&[jwk]).unwrap_err();
        assert_eq!(err, JwksError::PrivateKey { index: 0, member }, "{member}");
    }
}

#[test]
fn symmetric_key_is_skipped() {
    let reason = skip_reason(json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"}));
    assert_eq!(reason, JwkError::Symmetric.to_string());
}

#[test]
fn skipped_key_reports_kid_and_index() {
    let (_, skipped) = load(&[
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        es256().jwk(),
        json!({"kty": "oct", "k": "c2VjcmV0"}),
    ])
    .unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].index, 0);
    assert_eq!(skipped[0].kid.as_deref(), Some("hmac"));
    assert_eq!(skipped[1].index, 2);
    assert_eq!(skipped[1].kid, None);
}

#[test]
fn rsa_1024_key_is_skipped() {
    let mut n = vec![0x5a; 128];
    n[0] = 0xc1;
    n[127] = 0x01;
    let reason = skip_reason(rsa_jwk_with(&b64::encode(&n), "AQAB"));
    assert_eq!(reason, JwkError::RsaTooShort(1024).to_string());
}

#[test]
fn rsa_key_just_below_2048_bits_is_skipped() {
    let mut n = vec![0xff; 256];
    n[0] = 0x7f;
    let reason = skip_reason(rsa_jwk_with(&b64::encode(&n), "AQAB"));
    assert_eq!(reason, JwkError::RsaTooShort(2047).to_string());
}

#[test]
fn rsa_key_above_8192_bits_is_skipped() {
    let mut n = vec![0x5a; 1025];
    n[0] = 0xc1;
    n[1024] = 0x01;
    let reason = skip_reason(rsa_jwk_with(&b64::encode(&n), "AQAB"));
    assert_eq!(reason, JwkError::RsaTooLong(8200).to_string());
}

#[test]
fn rsa_bad_exponents_are_skipped() {
    let n = rsa_public_jwk(rsa_pair())["n"].as_str().unwrap().to_owned();
    for e in [
        b64::encode(&[1]),
        b64::encode(&[2]),
        b64::encode(&[0x01, 0x00, 0x00]),
        b64::encode(&[0x01, 0x00, 0x00, 0x00, 0x01]),
        String::new(),
        b64::encode(&[0]),
    ] {
        let reason = skip_reason(rsa_jwk_with(&n, &e));
        assert_eq!(reason, JwkError::RsaBadExponent.to_string(), "e={e:?}");
    }
}

#[test]
fn rsa_exponent_three_is_accepted() {
    // Parsing only: no signature is checked here.
    let n = rsa_public_jwk(rsa_pair())["n"].as_str().unwrap().to_owned();
    let (set, _) = load(&[rsa_jwk_with(&n, &b64::encode(&[3]))]).unwrap();
    assert_eq!(set.len(), 1);
}

#[test]
fn rsa_even_modulus_is_skipped() {
    let n = vec![0xc0; 256];
    let reason = skip_reason(rsa_jwk_with(&b64::encode(&n), "AQAB"));
    assert_eq!(reason, JwkError::RsaEvenModulus.to_string());
}

#[test]
fn roca_modulus_is_skipped() {
    let reason = skip_reason(rsa_jwk_with(ROCA_N, "AQAB"));
    assert_eq!(reason, JwkError::RsaRoca.to_string());
}

#[test]
fn roca_fingerprint_detection() {
    assert!(has_roca_fingerprint(&b64::decode(ROCA_N).unwrap()));
    assert!(has_roca_fingerprint(&[1]));
    let n = b64::decode(rsa_public_jwk(rsa_pair())["n"].as_str().unwrap()).unwrap();
    assert!(!has_roca_fingerprint(&n));
    let n = b64::decode(rsa_public_jwk(rsa_pair_2())["n"].as_str().unwrap()).unwrap();
    assert!(!has_roca_fingerprint(&n));
}

#[test]
fn key_with_use_enc_is_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    jwk["use"] = json!("enc");
    assert_eq!(
        skip_reason(jwk),
        JwkError::NotForSignatures("enc".into()).to_string()
    );
}

#[test]
fn key_ops_without_verify_is_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    jwk["key_ops"] = json!(["encrypt", "sign"]);
    assert_eq!(skip_reason(jwk), JwkError::NoVerifyOp.to_string());
}

#[test]
fn key_ops_with_verify_is_used() {
    let mut jwk = es256().jwk();
    jwk["key_ops"] = json!(["verify"]);
    let (set, skipped) = load(&[jwk]).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(set.len(), 1);
}

#[test]
fn key_ops_not_an_array_of_strings_is_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    jwk["key_ops"] = json!("verify");
    assert_eq!(skip_reason(jwk), JwkError::BadMember("key_ops").to_string());
    let mut jwk = TestKey::new(Alg::Es256, Some("f")).jwk();
    jwk["key_ops"] = json!(["verify", 1]);
    assert_eq!(skip_reason(jwk), JwkError::BadMember("key_ops").to_string());
}

#[test]
fn unsupported_kty_and_curves_are_skipped() {
    assert_eq!(
        skip_reason(json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})),
        JwkError::UnsupportedCrv("P-521".into()).to_string()
    );
    assert_eq!(
        skip_reason(json!({"kty": "OKP", "crv": "X25519", "x": "AA"})),
        JwkError::UnsupportedCrv("X25519".into()).to_string()
    );
    assert_eq!(
        skip_reason(json!({"kty": "OKP", "crv": "Ed448", "x": "AA"})),
        JwkError::UnsupportedCrv("Ed448".into()).to_string()
    );
    assert_eq!(
        skip_reason(json!({"kty": "AKP", "pub": "AAAA"})),
        JwkError::UnsupportedKty("AKP".into()).to_string()
    );
    assert_eq!(
        skip_reason(json!({"n": "AQAB"})),
        JwkError::UnsupportedKty("(absent)".into()).to_string()
    );
}

#[test]
fn ed25519_keys_of_small_order_are_skipped() {
    // Each encoding, with and without the sign bit; decoded, each is a
    // point whose eighth multiple is the identity.
    let small = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    for hex in small {
        for sign in [0u8, 0x80] {
            let mut x: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            x[31] |= sign;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x), "kid": "s"});
            assert_eq!(
                skip_reason(jwk),
                JwkError::Ed25519SmallOrder.to_string(),
                "{hex} {sign}"
            );
        }
    }
    // A real key is kept.
    let jwk = TestKey::new(Alg::EdDsa, Some("ok")).jwk();
    assert!(VerifyingKey::from_jwk(jwk.as_object().unwrap()).is_ok());
}

#[test]
fn unsupported_key_alg_is_skipped() {
    let mut jwk = rsa_public_jwk(rsa_pair());
    jwk["alg"] = json!("RSA-OAEP");
    assert_eq!(
        skip_reason(jwk),
        JwkError::UnsupportedAlg("RSA-OAEP".into()).to_string()
    );
}

#[test]
fn key_alg_that_does_not_fit_the_key_is_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    jwk["alg"] = json!("ES384");
    assert_eq!(
        skip_reason(jwk),
        JwkError::AlgDoesNotFitKey(Alg::Es384).to_string()
    );
    let mut jwk = rsa_public_jwk(rsa_pair());
    jwk["alg"] = json!("EdDSA");
    assert_eq!(
        skip_reason(jwk),
        JwkError::AlgDoesNotFitKey(Alg::EdDsa).to_string()
    );
}

#[test]
fn invalid_ec_point_is_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    let mut y = b64::decode(jwk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    jwk["y"] = json!(b64::encode(&y));
    assert_eq!(skip_reason(jwk), JwkError::Invalid.to_string());
}

#[test]
fn ec_coordinates_of_wrong_length_are_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, Some("e")).jwk();
    let x = b64::decode(jwk["x"].as_str().unwrap()).unwrap();
    jwk["x"] = json!(b64::encode(&x[1..]));
    assert_eq!(skip_reason(jwk), JwkError::BadMember("x").to_string());
    // A P-256 key labelled P-384.
    let mut jwk = TestKey::new(Alg::Es256, Some("f")).jwk();
    jwk["crv"] = json!("P-384");
    jwk.as_object_mut().unwrap().remove("alg");
    assert_eq!(skip_reason(jwk), JwkError::BadMember("x").to_string());
}

#[test]
fn padded_base64_in_key_is_skipped() {
    let mut jwk = rsa_public_jwk(rsa_pair());
    jwk["e"] = json!("AQAB==");
    assert_eq!(skip_reason(jwk), JwkError::BadMember("e").to_string());
}

#[test]
fn wrong_member_types_are_skipped() {
    let mut jwk = TestKey::new(Alg::Es256, None).jwk();
    jwk["kid"] = json!(7);
    assert_eq!(skip_reason(jwk), JwkError::BadMember("kid").to_string());
    let mut jwk = TestKey::new(Alg::Es256, Some("u")).jwk();
    jwk["use"] = json!(["sig"]);
    assert_eq!(skip_reason(jwk), JwkError::BadMember("use").to_string());
}

#[test]
fn non_object_entry_is_skipped() {
    assert_eq!(skip_reason(json!("key")), JwkError::NotAnObject.to_string());
}

#[test]
fn duplicate_kid_refuses_the_set() {
    let a = TestKey::new(Alg::Es256, Some("same")).jwk();
    let b = TestKey::new(Alg::EdDsa, Some("same")).jwk();
    assert_eq!(
        load(&[a, b]).unwrap_err(),
        JwksError::DuplicateKid("same".into())
    );
}

#[test]
fn a_skipped_key_sharing_a_usable_keys_kid_does_not_refuse_the_set() {
    // Issuers publish signature and encryption keys under one kid.
    let a = TestKey::new(Alg::Es256, Some("same")).jwk();
    let mut enc = TestKey::new(Alg::Rs256, Some("same")).jwk();
    enc["use"] = json!("enc");
    let oct = json!({"kty": "oct", "kid": "same", "k": "AAAA"});
    let (set, skipped) = load(&[a, enc, oct]).unwrap();
    assert_eq!(set.kids().collect::<Vec<_>>(), [Some("same")]);
    assert_eq!(skipped.len(), 2);
}

#[test]
fn duplicate_member_refuses_the_set() {
    let jwk = es256().jwk().to_string();
    let doc = format!(
        r#"{{"keys":[{}]}}"#,
        jwk.replacen('{', r#"{"kty":"EC","#, 1)
    );
    assert_eq!(
        KeySet::from_jwks_json(doc.as_bytes()).unwrap_err(),
        JwksError::DuplicateMember
    );
    let doc = format!(r#"{{"keys":[{jwk}],"keys":[]}}"#);
    assert_eq!(
        KeySet::from_jwks_json(doc.as_bytes()).unwrap_err(),
        JwksError::DuplicateMember
    );
}

#[test]
fn not_json_is_refused() {
    assert_eq!(
        KeySet::from_jwks_json(b"nope").unwrap_err(),
        JwksError::NotJson
    );
    assert_eq!(KeySet::from_jwks_json(b"").unwrap_err(), JwksError::NotJson);
}

#[test]
fn missing_keys_array_is_refused() {
    for doc in [&b"{}"[..], br#"{"keys":{}}"#, br#"{"keys":"x"}"#, b"[]"] {
        assert_eq!(
            KeySet::from_jwks_json(doc).unwrap_err(),
            JwksError::NoKeysArray,
            "{doc:?}"
        );
    }
}

#[test]
fn too_many_keys_are_refused() {
    let key = es256().bare_jwk();
    let keys = vec![key; MAX_KEYS + 1];
    assert_eq!(
        load(&keys).unwrap_err(),
        JwksError::TooManyKeys(MAX_KEYS + 1)
    );
}

#[test]
fn oversized_document_is_refused() {
    let doc = vec![b' '; MAX_JWKS_BYTES + 1];
    assert_eq!(
        KeySet::from_jwks_json(&doc).unwrap_err(),
        JwksError::TooLarge(MAX_JWKS_BYTES + 1)
    );
}

#[test]
fn zero_usable_keys_is_refused_with_reasons() {
    let err = load(&[
        json!({"kty": "oct", "kid": "h", "k": "AAAA"}),
        json!({"kty": "EC", "crv": "P-521", "kid": "p5"}),
    ])
    .unwrap_err();
    let JwksError::NoUsableKeys(skipped) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[1].kid.as_deref(), Some("p5"));
    assert_eq!(err.reason(), "no_usable_keys");
    assert!(load(&[]).is_err());
}

#[test]
fn single_jwk_parsing() {
    let jwk = es256().jwk().to_string();
    let key = VerifyingKey::from_jwk_json(jwk.as_bytes()).unwrap();
    assert_eq!(key.kid(), Some("ec-1"));
    assert_eq!(key.alg(), Some(Alg::Es256));
    assert!(format!("{key:?}").contains("EC P-256"));
    assert_eq!(
        VerifyingKey::from_jwk_json(br#"{"kty":"EC","kty":"EC"}"#).unwrap_err(),
        JwkError::DuplicateMember
    );
    assert_eq!(
        VerifyingKey::from_jwk_json(b"[]").unwrap_err(),
        JwkError::NotAnObject
    );
    let mut private = es256().jwk();
    private["d"] = json!("AA");
    assert_eq!(
        VerifyingKey::from_jwk_json(private.to_string().as_bytes()).unwrap_err(),
        JwkError::PrivateKey("d")
    );
}

#[test]
fn select_by_kid() {
    let a = TestKey::new(Alg::Es256, Some("a"));
    let b = TestKey::new(Alg::Es256, Some("b"));
    let set = crate::test_util::keyset(&[&a, &b]);
    assert_eq!(set.select(Some("b"), Alg::Es256).unwrap().kid(), Some("b"));
    assert_eq!(
        set.select(Some("c"), Alg::Es256).unwrap_err(),
        TokenError::UnknownKid("c".into())
    );
    assert_eq!(
        set.select(Some("a"), Alg::Es384).unwrap_err(),
        TokenError::KeyMismatch(Alg::Es384)
    );
}

#[test]
fn select_without_kid() {
    let ec = TestKey::new(Alg::Es256, Some("a"));
    let ed = TestKey::new(Alg::EdDsa, Some("b"));
    let set = crate::test_util::keyset(&[&ec, &ed]);
    assert_eq!(set.select(None, Alg::EdDsa).unwrap().kid(), Some("b"));
    assert_eq!(
        set.select(None, Alg::Rs256).unwrap_err(),
        TokenError::NoKeyForAlg(Alg::Rs256)
    );
    let ec2 = TestKey::new(Alg::Es256, Some("c"));
    let set = crate::test_util::keyset(&[&ec, &ec2]);
    assert_eq!(
        set.select(None, Alg::Es256).unwrap_err(),
        TokenError::AmbiguousKey(Alg::Es256)
    );
}

#[test]
fn verify_primitive_refuses_other_algs_and_lengths() {
    let key = es256();
    let set = crate::test_util::keyset(&[&key]);
    let vk = set.get("ec-1").unwrap();
    let sig = key.sign(b"msg");
    assert_eq!(vk.verify(Alg::Es256, b"msg", &sig), Ok(()));
    assert_eq!(
        vk.verify(Alg::Es256, b"msh", &sig),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        vk.verify(Alg::Es256, b"msg", &sig[..63]),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        vk.verify(Alg::Es384, b"msg", &sig),
        Err(TokenError::KeyMismatch(Alg::Es384))
    );
}

#[test]
fn key_set_debug_lists_kids_not_key_bytes() {
    let key = es256();
    let set = crate::test_util::keyset(&[&key]);
    let dbg = format!("{set:?}");
    assert!(dbg.contains("ec-1"));
    assert!(!dbg.contains(key.jwk()["x"].as_str().unwrap()));
}

#[test]
fn key_set_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeySet>();
    assert_send_sync::<VerifyingKey>();
}
