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
        rid: Some("abc"),
        route: "api",
    };
    let t = s.sign(&claims, "abc", 1_000).unwrap();
    let c = verify(s.jwks_json(), &t);
    assert_eq!(c["iss"], "portcullis-test");
    assert_eq!(c["aud"], "api");
    assert_eq!(c["sub"], "spiffe://example.org/a");
    assert_eq!(c["roles"][0], "reader");
    assert_eq!(c["exp"], 1_030);
    assert_eq!(c["jti"], "abc");
}

/// Subject `a`, no roles, route `api`.
fn minimal_claims(rid: Option<&str>) -> AssertionClaims<'_> {
    AssertionClaims {
        sub: "a",
        token_iss: None,
        token_sub: None,
        spiffe_id: None,
        cert_thumbprint: None,
        roles: &[],
        rid,
        route: "api",
    }
}

#[test]
fn tampered_assertion_fails_verification() {
    let s = AssertionSigner::new(None, "p", Duration::from_secs(30)).unwrap();
    let t = s.sign(&minimal_claims(Some("r")), "r", 1).unwrap();
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

#[test]
fn a_reused_assertion_has_its_own_jti_and_no_request_id() {
    let s = AssertionSigner::new(None, "p", Duration::from_secs(30)).unwrap();
    let t = s.sign(&minimal_claims(None), "conn-1", 5).unwrap();
    let c = verify(s.jwks_json(), &t);
    assert_eq!(c["jti"], "conn-1");
    assert!(c.get("rid").is_none(), "{c}");
}

#[test]
fn a_connection_assertion_is_reused_for_the_same_route_and_roles_until_half_its_life() {
    let cache = ConnAssertion::default();
    let v = http::HeaderValue::from_static("token-1");
    let roles = ["reader", "writer"];
    assert!(
        cache.get("a", roles.into_iter(), None, 100).is_none(),
        "empty"
    );
    cache.put(
        "a",
        roles.iter().map(|r| (*r).to_owned()).collect(),
        None,
        100,
        Duration::from_secs(60),
        v.clone(),
    );
    assert_eq!(
        cache.get("a", roles.into_iter(), None, 100),
        Some(v.clone())
    );
    assert_eq!(
        cache.get("a", roles.into_iter(), None, 129),
        Some(v.clone())
    );
    // Half the lifetime gone: a new one is due.
    assert!(cache.get("a", roles.into_iter(), None, 130).is_none());
    // The clock went back: not reused.
    assert!(cache.get("a", roles.into_iter(), None, 99).is_none());
    // Another route, other roles (fewer, more, other order): not reused.
    assert!(cache.get("b", roles.into_iter(), None, 110).is_none());
    assert!(cache.get("a", ["reader"].into_iter(), None, 110).is_none());
    assert!(cache
        .get("a", ["reader", "writer", "admin"].into_iter(), None, 110)
        .is_none());
    assert!(cache
        .get("a", ["writer", "reader"].into_iter(), None, 110)
        .is_none());
    // A new one replaces the old one.
    let w = http::HeaderValue::from_static("token-2");
    cache.put("b", vec![], None, 110, Duration::from_secs(60), w.clone());
    assert_eq!(cache.get("b", std::iter::empty(), None, 110), Some(w));
    assert!(cache.get("a", roles.into_iter(), None, 110).is_none());
}

fn verified(expires_at: i64) -> std::sync::Arc<portcullis_token::VerifiedToken> {
    let signer = AssertionSigner::new(None, "p", Duration::from_secs(30)).unwrap();
    let (keys, _) =
        portcullis_token::KeySet::from_jwks_json(signer.jwks_json().as_bytes()).unwrap();
    std::sync::Arc::new(portcullis_token::VerifiedToken {
        alg: portcullis_token::Alg::Es256,
        kid: None,
        typ: None,
        issuer: "https://idp.test".to_owned(),
        subject: Some("user-1".to_owned()),
        audiences: vec!["api".to_owned()],
        expires_at,
        not_before: None,
        issued_at: None,
        claims: serde_json::Map::new(),
        cnf_x5t_s256: None,
        key_set_version: keys.version(),
    })
}

#[test]
fn a_token_assertion_is_reused_only_for_the_same_verified_token_and_before_its_exp() {
    let cache = ConnAssertion::default();
    let v = http::HeaderValue::from_static("token-assertion");
    let roles = ["user"];
    let token = verified(120);
    cache.put(
        "a",
        vec!["user".to_owned()],
        Some(token.clone()),
        100,
        Duration::from_secs(60),
        v.clone(),
    );
    assert_eq!(
        cache.get("a", roles.into_iter(), Some(&token), 110),
        Some(v.clone())
    );
    // The same claims in another verification (another token, or the same
    // one verified again): not reused.
    let twin = verified(120);
    assert!(cache
        .get("a", roles.into_iter(), Some(&twin), 110)
        .is_none());
    // No token on this request: the token's assertion is not the
    // connection's own.
    assert!(cache.get("a", roles.into_iter(), None, 110).is_none());
    // Within half the lifetime (130) but at the token's exp (120): not reused.
    assert!(cache
        .get("a", roles.into_iter(), Some(&token), 120)
        .is_none());
    // And a certificate-only assertion is never handed to a token request.
    cache.put(
        "a",
        vec!["user".to_owned()],
        None,
        100,
        Duration::from_secs(60),
        v.clone(),
    );
    assert!(cache
        .get("a", roles.into_iter(), Some(&token), 110)
        .is_none());
    assert_eq!(cache.get("a", roles.into_iter(), None, 110), Some(v));
}
