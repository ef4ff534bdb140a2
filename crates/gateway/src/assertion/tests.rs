use super::*;
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

fn verify(jwks: &str, token: &str) -> serde_json::Value {
    let jwks: serde_json::Value = serde_json::from_str(jwks).unwrap();
    let k = &jwks["keys"][0];
    let x = B64.decode(k["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(k["y"].as_str().unwrap()).unwrap();
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let (signed, sig) = token.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signed.as_bytes(), &B64.decode(sig).unwrap())
        .expect("signature verifies with the JWKS key");
    let (h, p) = signed.split_once('.').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], k["kid"]);
    serde_json::from_slice(&B64.decode(p).unwrap()).unwrap()
}

#[test]
fn signs_verifiable_short_lived_assertions() {
    let s = AssertionSigner::new(None, "portcullis-test", Duration::from_secs(30)).unwrap();
    let roles = vec!["reader".to_owned()];
    let claims = AssertionClaims {
        sub: "spiffe://example.org/a",
        token_iss: None,
        token_sub: None,
        spiffe_id: Some("spiffe://example.org/a"),
        cert_thumbprint: None,
        roles: &roles,
        rid: "abc",
        route: "api",
    };
    let t = s.sign(&claims, 1_000).unwrap();
    let c = verify(s.jwks_json(), &t);
    assert_eq!(c["iss"], "portcullis-test");
    assert_eq!(c["aud"], "api");
    assert_eq!(c["sub"], "spiffe://example.org/a");
    assert_eq!(c["roles"][0], "reader");
    assert_eq!(c["exp"], 1_030);
    assert_eq!(c["jti"], "abc");
}

#[test]
fn tampered_assertion_fails_verification() {
    let s = AssertionSigner::new(None, "p", Duration::from_secs(30)).unwrap();
    let claims = AssertionClaims {
        sub: "a",
        token_iss: None,
        token_sub: None,
        spiffe_id: None,
        cert_thumbprint: None,
        roles: &[],
        rid: "r",
        route: "api",
    };
    let t = s.sign(&claims, 1).unwrap();
    let other = AssertionSigner::new(None, "p", Duration::from_secs(30)).unwrap();
    assert_ne!(s.kid(), other.kid());
    let result = std::panic::catch_unwind(|| verify(other.jwks_json(), &t));
    assert!(result.is_err(), "a token must not verify with another key");
}

#[test]
fn loads_key_from_pkcs8_and_rejects_garbage() {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let a = AssertionSigner::new(Some(doc.as_ref()), "p", Duration::from_secs(1)).unwrap();
    let b = AssertionSigner::new(Some(doc.as_ref()), "p", Duration::from_secs(1)).unwrap();
    assert_eq!(a.kid(), b.kid(), "the kid is the key's thumbprint");
    assert!(matches!(
        AssertionSigner::new(Some(b"nope"), "p", Duration::from_secs(1)),
        Err(AssertionError::BadKey)
    ));
    assert!(!format!("{a:?}").contains("key:"));
}
