use aws_lc_rs::hmac;
use aws_lc_rs::signature::KeyPair as _;
use serde_json::{json, Value};

use super::*;
use crate::rules::DEFAULT_MAX_TOKEN_BYTES;
use crate::test_util::{
    claims, header, keyset, mint, mint_raw, rsa_pair, rules, token, TestKey, AUD, ISS, NOW,
};

fn es256() -> TestKey {
    TestKey::new(Alg::Es256, Some("ec-1"))
}

fn verify_with(key: &TestKey, token: &str) -> Result<VerifiedToken, TokenError> {
    verify(token, &rules(), &keyset(&[key]), NOW)
}

/// Token with `claims()` changed by `edit`.
fn token_with(key: &TestKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    mint(key, &header(key), &c)
}

/// Token with `header()` changed by `edit`.
fn token_with_header(key: &TestKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut h = header(key);
    edit(&mut h);
    mint(key, &h, &claims())
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// Replaces the signature of `token` with `sig`.
fn with_signature(token: &str, sig: &[u8]) -> String {
    let p = parts(token);
    format!("{}.{}.{}", p[0], p[1], b64::encode(sig))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

// ---- accepted tokens ----------------------------------------------------

#[test]
fn accepts_every_algorithm() {
    for alg in Alg::ALL {
        let key = TestKey::new(alg, Some("k"));
        let t = verify_with(&key, &token(&key)).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(t.alg, alg);
        assert_eq!(t.kid.as_deref(), Some("k"));
        assert_eq!(t.typ.as_deref(), Some("JWT"));
        assert_eq!(t.issuer, ISS);
        assert_eq!(t.subject.as_deref(), Some("user-1"));
        assert_eq!(t.audiences, vec![AUD.to_owned()]);
        assert_eq!(t.expires_at, NOW + 300);
        assert_eq!(t.not_before, Some(NOW - 10));
        assert_eq!(t.issued_at, Some(NOW - 10));
        assert_eq!(t.claims["sub"], "user-1");
        assert_eq!(t.claim("iss"), Some(&json!(ISS)));
        assert_eq!(t.cnf_x5t_s256, None);
    }
}

#[test]
fn verified_token_carries_the_key_set_version() {
    let key = es256();
    let keys = keyset(&[&key]);
    let t = verify(&token(&key), &rules(), &keys, NOW).unwrap();
    assert_eq!(t.key_set_version, keys.version());
}

#[test]
fn token_without_kid_uses_the_single_fitting_key() {
    let key = TestKey::new(Alg::Es256, None);
    let other = TestKey::new(Alg::EdDsa, Some("ed"));
    let keys = keyset(&[&key, &other]);
    let t = verify(&token(&key), &rules(), &keys, NOW).unwrap();
    assert_eq!(t.kid, None);
}

#[test]
fn token_without_kid_and_several_fitting_keys_is_refused() {
    let key = TestKey::new(Alg::Es256, None);
    let other = TestKey::new(Alg::Es256, Some("b"));
    let keys = keyset(&[&key, &other]);
    assert_eq!(
        verify(&token(&key), &rules(), &keys, NOW).unwrap_err(),
        TokenError::AmbiguousKey(Alg::Es256)
    );
}

#[test]
fn token_without_kid_and_no_fitting_key_is_refused() {
    let key = TestKey::new(Alg::Es256, None);
    let other = TestKey::new(Alg::EdDsa, Some("b"));
    let keys = keyset(&[&other]);
    assert_eq!(
        verify(&token(&key), &rules(), &keys, NOW).unwrap_err(),
        TokenError::NoKeyForAlg(Alg::Es256)
    );
}

#[test]
fn audience_array_with_one_accepted_value_is_accepted() {
    let key = es256();
    let t = token_with(&key, |c| c["aud"] = json!(["other", AUD]));
    let v = verify_with(&key, &t).unwrap();
    assert_eq!(v.audiences, vec!["other".to_owned(), AUD.to_owned()]);
}

#[test]
fn fractional_dates_round_towards_stricter() {
    let key = es256();
    let t = token_with(&key, |c| {
        c["exp"] = json!((NOW + 100) as f64 + 0.9);
        c["nbf"] = json!((NOW - 100) as f64 + 0.1);
        c["iat"] = json!((NOW - 100) as f64 + 0.1);
    });
    let v = verify_with(&key, &t).unwrap();
    assert_eq!(v.expires_at, NOW + 100);
    assert_eq!(v.not_before, Some(NOW - 99));
    assert_eq!(v.issued_at, Some(NOW - 99));
}

#[test]
fn x5t_header_is_ignored() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h["x5t"] = json!("AAAA");
        h["x5t#S256"] = json!("AAAA");
    });
    assert!(verify_with(&key, &t).is_ok());
}

#[test]
fn verify_signature_accepts_non_json_payloads() {
    let key = es256();
    let t = mint_raw(&key, r#"{"alg":"ES256","kid":"ec-1"}"#, "foo");
    let jws = verify_signature(&t, &keyset(&[&key]), &Alg::ALL).unwrap();
    assert_eq!(jws.payload, b"foo");
    assert_eq!(jws.header.alg, Alg::Es256);
    assert_eq!(jws.header.kid.as_deref(), Some("ec-1"));
    // A JWT must carry a JSON object.
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("payload is not json")
    );
}

#[test]
fn verify_signature_honours_the_allow_list() {
    let key = es256();
    assert_eq!(
        verify_signature(&token(&key), &keyset(&[&key]), &[Alg::Rs256]).unwrap_err(),
        TokenError::AlgNotAllowed(Alg::Es256)
    );
}

// ---- algorithm ----------------------------------------------------------

#[test]
fn alg_none_is_refused() {
    let key = es256();
    let good = parts(&token(&key));
    let h = b64::encode(br#"{"alg":"none","kid":"ec-1"}"#);
    // With an empty signature the token is malformed; with any signature
    // the algorithm is refused.
    let unsigned = format!("{h}.{}.", good[1]);
    assert_eq!(
        verify_with(&key, &unsigned).unwrap_err(),
        TokenError::Malformed("empty signature")
    );
    let signed = format!("{h}.{}.{}", good[1], good[2]);
    assert_eq!(
        verify_with(&key, &signed).unwrap_err(),
        TokenError::UnsupportedAlg("none".into())
    );
    for name in ["None", "NONE", "nOnE"] {
        let t = token_with_header(&key, |h| h["alg"] = json!(name));
        assert_eq!(
            verify_with(&key, &t).unwrap_err(),
            TokenError::UnsupportedAlg(name.into())
        );
    }
}

#[test]
fn alg_hs256_key_confusion_is_refused() {
    // The attacker MACs with the RSA public key as the HMAC secret.
    let key = TestKey::new(Alg::Rs256, Some("rsa"));
    let keys = keyset(&[&key]);
    let secret = rsa_pair().public_key().as_ref().to_vec();
    let input = format!(
        "{}.{}",
        b64::encode(br#"{"alg":"HS256","kid":"rsa","typ":"JWT"}"#),
        b64::encode(claims().to_string().as_bytes())
    );
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let t = format!("{input}.{}", b64::encode(mac.as_ref()));
    assert_eq!(
        verify(&t, &rules(), &keys, NOW).unwrap_err(),
        TokenError::UnsupportedAlg("HS256".into())
    );
}

#[test]
fn alg_is_refused_before_key_lookup() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h["alg"] = json!("HS512");
        h["kid"] = json!("no-such-key");
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::UnsupportedAlg("HS512".into())
    );
}

#[test]
fn alg_not_in_allow_list_is_refused() {
    let key = es256();
    let rules = IssuerRules::new(ISS, vec![AUD.into()], vec![Alg::Rs256, Alg::EdDsa]).unwrap();
    assert_eq!(
        verify(&token(&key), &rules, &keyset(&[&key]), NOW).unwrap_err(),
        TokenError::AlgNotAllowed(Alg::Es256)
    );
}

#[test]
fn alg_missing_or_not_a_string_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h.as_object_mut().unwrap().remove("alg");
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header has no `alg`")
    );
    let t = token_with_header(&key, |h| h["alg"] = json!(["ES256"]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header `alg` is not a string")
    );
}

#[test]
fn unsupported_alg_is_truncated_and_escaped() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h["alg"] = json!(format!("X\n{}", "Y".repeat(100)))
    });
    let err = verify_with(&key, &t).unwrap_err();
    let TokenError::UnsupportedAlg(echoed) = &err else {
        panic!("{err:?}")
    };
    assert!(echoed.starts_with("X\\nYYY"));
    assert!(echoed.len() < 50);
    assert!(!err.to_string().contains('\n'));
}

// ---- header -------------------------------------------------------------

#[test]
fn jwk_header_injection_is_refused() {
    let attacker = TestKey::new(Alg::Es256, Some("ec-1"));
    let victim = es256();
    let t = token_with_header(&attacker, |h| h["jwk"] = attacker.bare_jwk());
    assert_eq!(
        verify(&t, &rules(), &keyset(&[&victim]), NOW).unwrap_err(),
        TokenError::EmbeddedKey("jwk")
    );
}

#[test]
fn jku_header_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| h["jku"] = json!("https://attacker.example/jwks"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::EmbeddedKey("jku")
    );
}

#[test]
fn x5u_header_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| h["x5u"] = json!("https://attacker.example/cert"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::EmbeddedKey("x5u")
    );
}

#[test]
fn x5c_header_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| h["x5c"] = json!(["MIIB"]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::EmbeddedKey("x5c")
    );
}

#[test]
fn crit_header_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h["crit"] = json!(["exp"]);
        h["exp"] = json!(NOW + 10);
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::CritUnsupported
    );
    let t = token_with_header(&key, |h| h["crit"] = json!([]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::CritUnsupported
    );
}

#[test]
fn b64_header_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| {
        h["b64"] = json!(false);
        h["crit"] = json!(["b64"]);
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::CritUnsupported
    );
    let t = token_with_header(&key, |h| h["b64"] = json!(true));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::UnencodedPayload
    );
}

#[test]
fn kid_unknown_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| h["kid"] = json!("ec-2"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::UnknownKid("ec-2".into())
    );
}

#[test]
fn kid_path_traversal_is_just_unknown() {
    let key = es256();
    let t = token_with_header(&key, |h| h["kid"] = json!("../../../../etc/passwd"));
    let err = verify_with(&key, &t).unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    let t = token_with_header(&key, |h| h["kid"] = json!("' OR '1'='1"));
    assert_eq!(verify_with(&key, &t).unwrap_err().reason(), "unknown_kid");
}

#[test]
fn kid_not_a_string_is_refused() {
    let key = es256();
    let t = token_with_header(&key, |h| h["kid"] = json!(1));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header `kid` is not a string")
    );
}

#[test]
fn typ_other_than_jwt_is_refused_by_default() {
    let key = es256();
    let t = token_with_header(&key, |h| h["typ"] = json!("dpop+jwt"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadTyp(Some("dpop+jwt".into()))
    );
    let t = token_with_header(&key, |h| h["typ"] = json!("application/at+jwt"));
    assert!(verify_with(&key, &t).is_ok());
    let t = token_with_header(&key, |h| {
        h.as_object_mut().unwrap().remove("typ");
    });
    assert!(verify_with(&key, &t).is_ok());
}

#[test]
fn typ_required_by_rules_must_be_present() {
    let key = es256();
    let rules = rules().with_typ(vec!["at+jwt".into()]).unwrap();
    let keys = keyset(&[&key]);
    let t = token_with_header(&key, |h| {
        h.as_object_mut().unwrap().remove("typ");
    });
    assert_eq!(
        verify(&t, &rules, &keys, NOW).unwrap_err(),
        TokenError::BadTyp(None)
    );
    assert_eq!(
        verify(&token(&key), &rules, &keys, NOW).unwrap_err(),
        TokenError::BadTyp(Some("JWT".into()))
    );
    let t = token_with_header(&key, |h| h["typ"] = json!("AT+JWT"));
    assert!(verify(&t, &rules, &keys, NOW).is_ok());
    let t = token_with_header(&key, |h| h["typ"] = json!(1));
    assert_eq!(
        verify(&t, &rules, &keys, NOW).unwrap_err(),
        TokenError::Malformed("header `typ` is not a string")
    );
}

#[test]
fn duplicate_alg_in_header_is_refused() {
    let key = es256();
    let t = mint_raw(
        &key,
        r#"{"alg":"ES256","kid":"ec-1","alg":"none"}"#,
        &claims().to_string(),
    );
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::DuplicateMember
    );
}

#[test]
fn header_not_a_json_object_is_refused() {
    let key = es256();
    let t = mint_raw(&key, r#"["ES256"]"#, &claims().to_string());
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header is not a json object")
    );
    let t = mint_raw(&key, "alg=ES256", &claims().to_string());
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header is not json")
    );
}

#[test]
fn deeply_nested_header_is_refused() {
    let key = es256();
    let deep = format!(
        r#"{{"alg":"ES256","kid":"ec-1","x":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let t = mint_raw(&key, &deep, &claims().to_string());
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::NestingTooDeep
    );
}

// ---- key choice ---------------------------------------------------------

#[test]
fn key_alg_mismatch_is_refused() {
    // The JWKS says this RSA key is for RS256; a PS256 token made with the
    // same private key must not be accepted.
    let rs = TestKey::new(Alg::Rs256, Some("rsa"));
    let keys = keyset(&[&rs]);
    let ps = TestKey::new(Alg::Ps256, Some("rsa"));
    assert_eq!(
        verify(&token(&ps), &rules(), &keys, NOW).unwrap_err(),
        TokenError::KeyMismatch(Alg::Ps256)
    );
    assert!(verify(&token(&rs), &rules(), &keys, NOW).is_ok());
}

#[test]
fn key_type_mismatch_is_refused() {
    let rsa = TestKey::new(Alg::Rs256, Some("shared"));
    let keys = keyset(&[&rsa]);
    let ec = TestKey::new(Alg::Es256, Some("shared"));
    assert_eq!(
        verify(&token(&ec), &rules(), &keys, NOW).unwrap_err(),
        TokenError::KeyMismatch(Alg::Es256)
    );
}

#[test]
fn curve_mismatch_is_refused() {
    let p256 = TestKey::new(Alg::Es256, Some("ec"));
    let keys = keyset(&[&p256]);
    let p384 = TestKey::new(Alg::Es384, Some("ec"));
    assert_eq!(
        verify(&token(&p384), &rules(), &keys, NOW).unwrap_err(),
        TokenError::KeyMismatch(Alg::Es384)
    );
}

#[test]
fn key_with_use_enc_is_never_used() {
    let key = es256();
    let mut enc = key.jwk();
    enc["use"] = json!("enc");
    let good = TestKey::new(Alg::EdDsa, Some("ed")).jwk();
    let (keys, skipped) =
        KeySet::from_jwks_json(&crate::test_util::jwks_json(&[enc, good])).unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        verify(&token(&key), &rules(), &keys, NOW).unwrap_err(),
        TokenError::UnknownKid("ec-1".into())
    );
}

#[test]
fn key_ops_without_verify_is_never_used() {
    let key = es256();
    let mut jwk = key.jwk();
    jwk["key_ops"] = json!(["sign"]);
    let good = TestKey::new(Alg::EdDsa, Some("ed")).jwk();
    let (keys, _) = KeySet::from_jwks_json(&crate::test_util::jwks_json(&[jwk, good])).unwrap();
    assert_eq!(
        verify(&token(&key), &rules(), &keys, NOW).unwrap_err(),
        TokenError::UnknownKid("ec-1".into())
    );
}

#[test]
fn token_signed_by_another_key_with_the_same_kid_is_refused() {
    let published = es256();
    let attacker = es256();
    assert_eq!(
        verify(&token(&attacker), &rules(), &keyset(&[&published]), NOW).unwrap_err(),
        TokenError::BadSignature
    );
}

// ---- signature ----------------------------------------------------------

#[test]
fn modified_payload_is_refused() {
    let key = es256();
    let p = parts(&token(&key));
    let mut c = claims();
    c["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        p[0],
        b64::encode(c.to_string().as_bytes()),
        p[2]
    );
    assert_eq!(
        verify_with(&key, &forged).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn psychic_signature_is_refused() {
    // CVE-2022-21449: r = s = 0 "verifies" any message in broken ECDSA.
    let key = es256();
    let t = with_signature(&token(&key), &[0; 64]);
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
    let key = TestKey::new(Alg::Es384, Some("p384"));
    let t = with_signature(&token(&key), &[0; 96]);
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn ecdsa_r_and_s_equal_to_the_order_are_refused() {
    let key = es256();
    let n = hex(P256_ORDER);
    let t = with_signature(&token(&key), &[n.clone(), n].concat());
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
    let key = TestKey::new(Alg::Es384, Some("p384"));
    let n = hex(P384_ORDER);
    let t = with_signature(&token(&key), &[n.clone(), n].concat());
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn ecdsa_r_zero_s_one_is_refused() {
    let key = es256();
    let mut sig = [0u8; 64];
    sig[63] = 1;
    let t = with_signature(&token(&key), &sig);
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn truncated_signature_is_refused() {
    for alg in [Alg::Es256, Alg::Rs256, Alg::EdDsa] {
        let key = TestKey::new(alg, Some("k"));
        let t = token(&key);
        let sig = b64::decode(&parts(&t)[2]).unwrap();
        let cut = with_signature(&t, &sig[..sig.len() - 1]);
        assert_eq!(
            verify_with(&key, &cut).unwrap_err(),
            TokenError::BadSignature,
            "{alg}"
        );
    }
}

#[test]
fn ecdsa_der_signature_is_refused() {
    // JOSE uses r || s, never ASN.1 DER.
    let key = es256();
    let t = token(&key);
    let rs = b64::decode(&parts(&t)[2]).unwrap();
    let mut der = vec![0x30, 0x46, 0x02, 0x21, 0x00];
    der.extend_from_slice(&rs[..32]);
    der.extend_from_slice(&[0x02, 0x21, 0x00]);
    der.extend_from_slice(&rs[32..]);
    let t = with_signature(&t, &der);
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn extended_signature_is_refused() {
    let key = es256();
    let t = token(&key);
    let mut sig = b64::decode(&parts(&t)[2]).unwrap();
    sig.push(0);
    let t = with_signature(&t, &sig);
    assert_eq!(verify_with(&key, &t).unwrap_err(), TokenError::BadSignature);
}

// ---- structure and encoding ---------------------------------------------

#[test]
fn token_over_the_size_limit_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| {
        c["pad"] = json!("x".repeat(DEFAULT_MAX_TOKEN_BYTES))
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::TooLarge {
            len: t.len(),
            max: DEFAULT_MAX_TOKEN_BYTES
        }
    );
}

#[test]
fn size_limit_follows_the_rules_up_to_the_hard_cap() {
    let key = es256();
    let keys = keyset(&[&key]);
    let t = token_with(&key, |c| {
        c["pad"] = json!("x".repeat(DEFAULT_MAX_TOKEN_BYTES))
    });
    let roomy = rules().with_max_token_bytes(MAX_TOKEN_BYTES).unwrap();
    assert!(verify(&t, &roomy, &keys, NOW).is_ok());
    let tight = rules().with_max_token_bytes(100).unwrap();
    assert_eq!(
        verify(&token(&key), &tight, &keys, NOW)
            .unwrap_err()
            .reason(),
        "too_large"
    );
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        verify(&huge, &roomy, &keys, NOW).unwrap_err(),
        TokenError::TooLarge {
            len: MAX_TOKEN_BYTES + 1,
            max: MAX_TOKEN_BYTES
        }
    );
}

#[test]
fn base64_padding_is_refused() {
    let key = es256();
    let p = parts(&token(&key));
    // 64-byte signature: 86 characters, canonical padding would be "==".
    assert_eq!(p[2].len() % 4, 2);
    let t = format!("{}.{}.{}==", p[0], p[1], p[2]);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("signature is not base64url")
    );
    let t = format!("{}=.{}.{}", p[0], p[1], p[2]);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("header is not base64url")
    );
}

#[test]
fn non_canonical_base64_is_refused() {
    let key = es256();
    let p = parts(&token(&key));
    // The last character of a 64-byte signature carries 2 data bits and 4
    // bits that must be zero; set one of those.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = p[2].chars().last().unwrap();
    let value = ALPHABET.find(last).unwrap();
    assert_eq!(value & 0x0f, 0);
    let sloppy = ALPHABET.chars().nth(value | 1).unwrap();
    let sig = format!("{}{sloppy}", &p[2][..p[2].len() - 1]);
    let t = format!("{}.{}.{sig}", p[0], p[1]);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("signature is not base64url")
    );
}

#[test]
fn standard_alphabet_and_whitespace_are_refused() {
    let key = es256();
    let t = token(&key);
    let p = parts(&t);
    for bad in [
        format!(
            "{}.{}.{}",
            p[0],
            p[1],
            p[2].replace('-', "+").replace('_', "/")
        ),
        format!("{} .{}.{}", p[0], p[1], p[2]),
        format!("{}.{}\n.{}", p[0], p[1], p[2]),
        format!(" {t}"),
    ] {
        if bad == t {
            continue;
        }
        assert_eq!(
            verify_with(&key, &bad).unwrap_err().reason(),
            "malformed",
            "{bad}"
        );
    }
}

#[test]
fn extra_parts_are_refused() {
    let key = es256();
    let t = token(&key);
    for bad in [format!("{t}."), format!("{t}.e30"), format!("{t}..")] {
        assert_eq!(
            verify_with(&key, &bad).unwrap_err(),
            TokenError::Malformed("more than three parts")
        );
    }
}

#[test]
fn missing_parts_are_refused() {
    let key = es256();
    let p = parts(&token(&key));
    for bad in [String::new(), p[0].clone(), format!("{}.{}", p[0], p[1])] {
        assert_eq!(
            verify_with(&key, &bad).unwrap_err(),
            TokenError::Malformed("fewer than three parts")
        );
    }
}

#[test]
fn empty_parts_are_refused() {
    let key = es256();
    let p = parts(&token(&key));
    assert_eq!(
        verify_with(&key, &format!(".{}.{}", p[1], p[2])).unwrap_err(),
        TokenError::Malformed("empty header")
    );
    assert_eq!(
        verify_with(&key, &format!("{}..{}", p[0], p[2])).unwrap_err(),
        TokenError::Malformed("empty payload")
    );
    assert_eq!(
        verify_with(&key, &format!("{}.{}.", p[0], p[1])).unwrap_err(),
        TokenError::Malformed("empty signature")
    );
    assert_eq!(
        verify_with(&key, "..").unwrap_err(),
        TokenError::Malformed("empty header")
    );
}

#[test]
fn deeply_nested_payload_is_refused() {
    let key = es256();
    let mut c = claims().to_string();
    c.pop();
    let deep = format!(r#"{c},"x":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
    let t = mint_raw(&key, &header(&key).to_string(), &deep);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::NestingTooDeep
    );
}

#[test]
fn payload_not_a_json_object_is_refused() {
    let key = es256();
    let t = mint_raw(&key, &header(&key).to_string(), "[1,2]");
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Malformed("payload is not a json object")
    );
}

// ---- claims -------------------------------------------------------------

#[test]
fn expired_token_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["exp"] = json!(NOW - 1));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::Expired {
            expires_at: NOW - 1,
            now: NOW
        }
    );
}

#[test]
fn token_expiring_now_is_refused() {
    // RFC 7519 4.1.4: not accepted "on or after" exp.
    let key = es256();
    let t = token_with(&key, |c| c["exp"] = json!(NOW));
    assert_eq!(verify_with(&key, &t).unwrap_err().reason(), "expired");
    let t = token_with(&key, |c| c["exp"] = json!(NOW + 1));
    assert!(verify_with(&key, &t).is_ok());
}

#[test]
fn leeway_extends_exp_and_nbf() {
    let key = es256();
    let keys = keyset(&[&key]);
    let lenient = rules().with_leeway_secs(30).unwrap();
    let t = token_with(&key, |c| c["exp"] = json!(NOW - 29));
    assert!(verify(&t, &lenient, &keys, NOW).is_ok());
    let t = token_with(&key, |c| c["exp"] = json!(NOW - 30));
    assert_eq!(
        verify(&t, &lenient, &keys, NOW).unwrap_err().reason(),
        "expired"
    );
    let t = token_with(&key, |c| {
        c["nbf"] = json!(NOW + 30);
        c["iat"] = json!(NOW + 30);
    });
    assert!(verify(&t, &lenient, &keys, NOW).is_ok());
    let t = token_with(&key, |c| c["nbf"] = json!(NOW + 31));
    assert_eq!(
        verify(&t, &lenient, &keys, NOW).unwrap_err().reason(),
        "not_yet_valid"
    );
}

#[test]
fn nbf_in_the_future_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["nbf"] = json!(NOW + 1));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::NotYetValid {
            not_before: NOW + 1,
            now: NOW
        }
    );
}

#[test]
fn iat_in_the_future_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["iat"] = json!(NOW + 5));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::IssuedInFuture {
            issued_at: NOW + 5,
            now: NOW
        }
    );
}

#[test]
fn wrong_issuer_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["iss"] = json!("https://evil.example.com"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::WrongIssuer("https://evil.example.com".into())
    );
    // Exact match only: no prefix, case or trailing-slash games.
    for iss in [
        format!("{ISS}/"),
        ISS.to_uppercase(),
        ISS[..ISS.len() - 1].to_owned(),
    ] {
        let t = token_with(&key, |c| c["iss"] = json!(iss));
        assert_eq!(verify_with(&key, &t).unwrap_err().reason(), "wrong_issuer");
    }
}

#[test]
fn missing_or_non_string_issuer_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::MissingClaim("iss".into())
    );
    let t = token_with(&key, |c| c["iss"] = json!([ISS]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("iss".into())
    );
}

#[test]
fn wrong_audience_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["aud"] = json!("other-api"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::WrongAudience
    );
    let t = token_with(&key, |c| c["aud"] = json!(["a", "b"]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::WrongAudience
    );
    let t = token_with(&key, |c| c["aud"] = json!([]));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::WrongAudience
    );
}

#[test]
fn missing_or_malformed_audience_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::MissingClaim("aud".into())
    );
    for aud in [json!([AUD, 1]), json!(1), json!({"aud": AUD})] {
        let t = token_with(&key, |c| c["aud"] = aud.clone());
        assert_eq!(
            verify_with(&key, &t).unwrap_err(),
            TokenError::BadClaimType("aud".into()),
            "{aud}"
        );
    }
}

#[test]
fn missing_exp_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::MissingClaim("exp".into())
    );
}

#[test]
fn exp_as_string_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["exp"] = json!((NOW + 300).to_string()));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("exp".into())
    );
}

#[test]
fn nbf_and_iat_of_wrong_type_are_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["nbf"] = json!("0"));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("nbf".into())
    );
    let t = token_with(&key, |c| c["iat"] = json!(true));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("iat".into())
    );
    let t = token_with(&key, |c| c["exp"] = json!(null));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("exp".into())
    );
}

#[test]
fn huge_dates_saturate() {
    let key = es256();
    let t = token_with(&key, |c| c["exp"] = json!(u64::MAX));
    assert_eq!(verify_with(&key, &t).unwrap().expires_at, i64::MAX);
    let t = token_with(&key, |c| c["exp"] = json!(1e300));
    assert_eq!(verify_with(&key, &t).unwrap().expires_at, i64::MAX);
    let t = token_with(&key, |c| c["exp"] = json!(-1e300));
    assert_eq!(verify_with(&key, &t).unwrap_err().reason(), "expired");
}

#[test]
fn duplicate_exp_member_in_payload_is_refused() {
    let key = es256();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#,
        NOW - 100,
        NOW + 100
    );
    let t = mint_raw(&key, &header(&key).to_string(), &payload);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::DuplicateMember
    );
}

#[test]
fn duplicate_member_nested_in_payload_is_refused() {
    let key = es256();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"realm_access":{{"roles":["user"],"roles":["admin"]}}}}"#,
        NOW + 100
    );
    let t = mint_raw(&key, &header(&key).to_string(), &payload);
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::DuplicateMember
    );
}

#[test]
fn sub_of_wrong_type_is_refused() {
    let key = es256();
    let t = token_with(&key, |c| c["sub"] = json!(42));
    assert_eq!(
        verify_with(&key, &t).unwrap_err(),
        TokenError::BadClaimType("sub".into())
    );
    let t = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    assert_eq!(verify_with(&key, &t).unwrap().subject, None);
}

#[test]
fn required_claims_must_be_present() {
    let key = es256();
    let keys = keyset(&[&key]);
    let strict = rules()
        .with_required_claims(vec!["sub".into(), "scope".into()])
        .unwrap();
    assert_eq!(
        verify(&token(&key), &strict, &keys, NOW).unwrap_err(),
        TokenError::MissingClaim("scope".into())
    );
    let t = token_with(&key, |c| c["scope"] = json!("read"));
    assert!(verify(&t, &strict, &keys, NOW).is_ok());
}

#[test]
fn cnf_thumbprint_is_extracted() {
    let key = es256();
    let thumb = [7u8; 32];
    let t = token_with(&key, |c| {
        c["cnf"] = json!({"x5t#S256": b64::encode(&thumb)})
    });
    let v = verify_with(&key, &t).unwrap();
    assert_eq!(v.cnf_x5t_s256, Some(thumb));
    assert_eq!(v.cnf_thumbprint(), Some(Thumbprint(thumb)));
}

#[test]
fn cnf_with_a_method_other_than_x5t_s256_is_refused() {
    let key = es256();
    let thumb = b64::encode(&[7u8; 32]);
    for (cnf, method) in [
        (
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            "jkt",
        ),
        (json!({"jwk": {"kty": "EC"}}), "jwk"),
        (json!({"x5t": "AAAA"}), "x5t"),
        (json!({"kid": "pop-key-1"}), "kid"),
        (json!({}), ""),
        // A second binding beside the one checked: the token's issuer
        // meant both to hold.
        (json!({"x5t#S256": thumb, "jkt": "abc"}), "jkt"),
    ] {
        let t = token_with(&key, |c| c["cnf"] = cnf.clone());
        let e = verify_with(&key, &t).unwrap_err();
        assert_eq!(e, TokenError::UnsupportedCnf(method.into()), "{cnf}");
        assert_eq!(e.reason(), "unsupported_cnf");
    }
}

#[test]
fn cnf_malformed_is_refused() {
    let key = es256();
    for (cnf, why) in [
        (json!("x"), "`cnf` is not an object"),
        (json!({"x5t#S256": 1}), "`x5t#S256` is not a string"),
        (
            json!({"x5t#S256": b64::encode(&[1u8; 31])}),
            "`x5t#S256` is not base64url of 32 bytes",
        ),
        (
            json!({"x5t#S256": b64::encode(&[1u8; 33])}),
            "`x5t#S256` is not base64url of 32 bytes",
        ),
        (
            json!({"x5t#S256": format!("{}=", b64::encode(&[1u8; 32]))}),
            "`x5t#S256` is not base64url of 32 bytes",
        ),
        (
            json!({"x5t#S256": "0".repeat(64)}),
            "`x5t#S256` is not base64url of 32 bytes",
        ),
    ] {
        let t = token_with(&key, |c| c["cnf"] = cnf.clone());
        assert_eq!(
            verify_with(&key, &t).unwrap_err(),
            TokenError::BadCnf(why),
            "{cnf}"
        );
    }
}

#[test]
fn claims_are_checked_only_after_the_signature() {
    // An expired token with a bad signature reports the signature.
    let key = es256();
    let t = token_with(&key, |c| c["exp"] = json!(0));
    let forged = with_signature(&t, &[1; 64]);
    assert_eq!(
        verify_with(&key, &forged).unwrap_err(),
        TokenError::BadSignature
    );
    // Claims of the wrong type behind a bad signature: still the signature.
    let t = token_with(&key, |c| c["exp"] = json!("soon"));
    let forged = with_signature(&t, &[1; 64]);
    assert_eq!(
        verify_with(&key, &forged).unwrap_err(),
        TokenError::BadSignature
    );
}

// ---- no secrets in errors -----------------------------------------------

#[test]
fn errors_never_contain_the_token_or_signature() {
    let key = es256();
    let t = token(&key);
    let p = parts(&t);
    let other = es256();
    let failures = [
        verify(&t, &rules(), &keyset(&[&other]), NOW).unwrap_err(),
        verify_with(&key, &format!("{t}.")).unwrap_err(),
        verify_with(&key, &format!("{}.{}.{}=", p[0], p[1], p[2])).unwrap_err(),
        verify_with(&key, &token_with_header(&key, |h| h["kid"] = json!(p[2]))).unwrap_err(),
        verify_with(&key, &token_with(&key, |c| c["iss"] = json!(p[2]))).unwrap_err(),
    ];
    for err in failures {
        let msg = err.to_string();
        let dbg = format!("{err:?}");
        for part in &p {
            assert!(!msg.contains(part.as_str()), "{msg}");
            assert!(!dbg.contains(part.as_str()), "{dbg}");
        }
    }
}

#[test]
fn verified_token_debug_does_not_contain_the_token() {
    let key = es256();
    let t = token(&key);
    let v = verify_with(&key, &t).unwrap();
    let dbg = format!("{v:?}");
    for part in parts(&t) {
        assert!(!dbg.contains(&part));
    }
    assert!(dbg.contains("user-1"));
}

// ---- peek_issuer --------------------------------------------------------

#[test]
fn peek_issuer_reads_iss_without_verifying() {
    let key = es256();
    assert_eq!(peek_issuer(&token(&key)).unwrap(), ISS);
    let forged = with_signature(&token(&key), &[0; 64]);
    assert_eq!(peek_issuer(&forged).unwrap(), ISS);
}

#[test]
fn peek_issuer_refuses_malformed_tokens() {
    let key = es256();
    let t = token(&key);
    let p = parts(&t);
    assert_eq!(peek_issuer("").unwrap_err().reason(), "malformed");
    assert_eq!(peek_issuer("a.b").unwrap_err().reason(), "malformed");
    assert_eq!(
        peek_issuer(&format!("{t}.x")).unwrap_err().reason(),
        "malformed"
    );
    assert_eq!(
        peek_issuer(&format!("{}..{}", p[0], p[2])).unwrap_err(),
        TokenError::Malformed("empty payload")
    );
    assert_eq!(
        peek_issuer(&format!("{}.{}.{}", p[0], b64::encode(b"[1]"), p[2])).unwrap_err(),
        TokenError::Malformed("payload is not a json object")
    );
    assert_eq!(
        peek_issuer(&format!("{}.{}.{}", b64::encode(b"1"), p[1], p[2])).unwrap_err(),
        TokenError::Malformed("header is not a json object")
    );
    assert_eq!(
        peek_issuer(&format!("{}.{}.{}=", p[0], p[1], p[2])).unwrap_err(),
        TokenError::Malformed("signature is not base64url")
    );
    assert_eq!(
        peek_issuer(&"a".repeat(MAX_TOKEN_BYTES + 1))
            .unwrap_err()
            .reason(),
        "too_large"
    );
}

#[test]
fn peek_issuer_refuses_missing_or_odd_iss() {
    let key = es256();
    let t = token_with(&key, |c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    assert_eq!(
        peek_issuer(&t).unwrap_err(),
        TokenError::MissingClaim("iss".into())
    );
    let t = token_with(&key, |c| c["iss"] = json!(1));
    assert_eq!(
        peek_issuer(&t).unwrap_err(),
        TokenError::BadClaimType("iss".into())
    );
    let dup = mint_raw(
        &key,
        &header(&key).to_string(),
        r#"{"iss":"https://a.example","iss":"https://b.example"}"#,
    );
    assert_eq!(peek_issuer(&dup).unwrap_err(), TokenError::DuplicateMember);
}
