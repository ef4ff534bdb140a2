//! Cost of verifying one bearer token, next to the raw signature check.
//!
//! For ES256, RS256 (2048-bit) and EdDSA: `verify/*` is the full
//! [`portcullis_token::verify`] of a fresh token (parse, header checks, key
//! lookup, signature, claims); `raw/*` is the aws-lc-rs signature check
//! alone over the same bytes with a pre-parsed key, so the overhead of the
//! JWT layer is the ratio of the two. `cached/*` is a
//! [`VerifiedCache::get`] hit for the same token. `peek_issuer/*` is the
//! untrusted structural parse that picks the issuer.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

/// The allocator of the `portcullis` binary, so the JWT layer's
/// allocations cost here what they cost in the gateway.
#[global_allocator]
static GLOBAL: portcullis_alloc::Mimalloc = portcullis_alloc::Mimalloc;

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
    RsaPublicKeyComponents,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_token::{peek_issuer, verify, Alg, IssuerRules, KeySet, VerifiedCache};
use serde_json::json;

const ISS: &str = "https://idp.example.com/realms/prod";
const AUD: &str = "portcullis";
const NOW: i64 = 1_700_000_000;

type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;

struct Case {
    alg: Alg,
    jwk: serde_json::Value,
    raw_key: ParsedPublicKey,
    sign: Signer,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn es256() -> Case {
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key");
    let point = pair.public_key().as_ref().to_vec();
    let raw_key =
        ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point).expect("ec public key");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "es256", "alg": "ES256", "use": "sig",
        "x": b64(point.get(1..33).expect("x")), "y": b64(point.get(33..).expect("y")),
    });
    let rng = SystemRandom::new();
    Case {
        alg: Alg::Es256,
        jwk,
        raw_key,
        sign: Box::new(move |m| pair.sign(&rng, m).expect("sign").as_ref().to_vec()),
    }
}

fn rs256() -> Case {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
    let public = pair.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    let raw_key = RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .expect("rsa public key");
    let jwk = json!({
        "kty": "RSA", "kid": "rs256", "alg": "RS256", "use": "sig", "n": b64(&n), "e": b64(&e),
    });
    let rng = SystemRandom::new();
    Case {
        alg: Alg::Rs256,
        jwk,
        raw_key,
        sign: Box::new(move |m| {
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
                .expect("sign");
            sig
        }),
    }
}

fn eddsa() -> Case {
    let pair = Ed25519KeyPair::generate().expect("ed25519 key");
    let x = pair.public_key().as_ref().to_vec();
    let raw_key = ParsedPublicKey::new(&signature::ED25519, &x).expect("ed25519 public key");
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "eddsa", "alg": "EdDSA", "use": "sig", "x": b64(&x),
    });
    Case {
        alg: Alg::EdDsa,
        jwk,
        raw_key,
        sign: Box::new(move |m| pair.sign(m).as_ref().to_vec()),
    }
}

/// A typical access token: a few registered claims, scopes and roles.
fn mint(case: &Case) -> (String, Vec<u8>, Vec<u8>) {
    let header = json!({"alg": case.alg.name(), "kid": case.jwk.get("kid"), "typ": "at+jwt"});
    let claims = json!({
        "iss": ISS, "aud": [AUD, "account"], "sub": "5f1c7a9e-2b43-4c55-9d7e-0a1b2c3d4e5f",
        "exp": NOW + 300, "iat": NOW - 5, "nbf": NOW - 5, "jti": "b3f9a1c2-7d8e-4f60-a1b2-c3d4e5f60718",
        "azp": "web-frontend", "scope": "openid profile email orders:read orders:write",
        "realm_access": {"roles": ["user", "billing", "support"]},
        "email": "alice@example.com", "email_verified": true,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = (case.sign)(input.as_bytes());
    let token = format!("{input}.{}", b64(&sig));
    (token, input.into_bytes(), sig)
}

fn bench(c: &mut Criterion) {
    let cases = [es256(), rs256(), eddsa()];
    let jwks = json!({"keys": cases.iter().map(|c| c.jwk.clone()).collect::<Vec<_>>()});
    let (keys, _) = KeySet::from_jwks_json(jwks.to_string().as_bytes()).expect("jwks");
    let rules = IssuerRules::new(ISS, vec![AUD.into()], Alg::ALL.to_vec())
        .expect("rules")
        .with_typ(vec!["at+jwt".into()])
        .expect("typ");
    let cache = VerifiedCache::new(10_000);

    for case in &cases {
        let name = case.alg.name();
        let (token, input, sig) = mint(case);
        let verified = verify(&token, &rules, &keys, NOW).expect("token verifies");
        cache.insert(&token, Arc::new(verified), rules.leeway_secs());

        c.bench_function(&format!("raw/{name}"), |b| {
            b.iter(|| {
                case.raw_key
                    .verify_sig(black_box(&input), black_box(&sig))
                    .expect("raw signature verifies")
            })
        });
        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| verify(black_box(&token), &rules, &keys, black_box(NOW)).expect("verifies"))
        });
        c.bench_function(&format!("peek_issuer/{name}"), |b| {
            b.iter(|| peek_issuer(black_box(&token)).expect("issuer"))
        });
        c.bench_function(&format!("cached/{name}"), |b| {
            b.iter(|| {
                cache
                    .get(black_box(&token), ISS, keys.version(), black_box(NOW))
                    .expect("cache hit")
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
