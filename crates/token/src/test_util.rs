//! Keys, key sets and tokens minted by the tests themselves.

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, RsaKeyPair,
};
use serde_json::{json, Value};

use crate::b64;
use crate::{Alg, IssuerRules, KeySet};

pub(crate) const ISS: &str = "https://idp.example.com";
pub(crate) const AUD: &str = "portcullis";
pub(crate) const NOW: i64 = 1_700_000_000;

enum Signer {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(&'static RsaKeyPair),
}

/// A signing key and its public JWK.
pub(crate) struct TestKey {
    pub alg: Alg,
    pub kid: Option<String>,
    signer: Signer,
}

/// One 2048-bit RSA key pair for all tests (generation is slow).
pub(crate) fn rsa_pair() -> &'static RsaKeyPair {
    static PAIR: OnceLock<RsaKeyPair> = OnceLock::new();
    PAIR.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

/// A second RSA key pair, for "other key" tests.
pub(crate) fn rsa_pair_2() -> &'static RsaKeyPair {
    static PAIR: OnceLock<RsaKeyPair> = OnceLock::new();
    PAIR.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
}

impl TestKey {
    pub(crate) fn new(alg: Alg, kid: Option<&str>) -> Self {
        let signer = match alg {
            Alg::Es256 => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
            Alg::Es384 => Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            ),
            Alg::EdDsa => Signer::Ed(Ed25519KeyPair::generate().unwrap()),
            _ => Signer::Rsa(rsa_pair()),
        };
        Self {
            alg,
            kid: kid.map(str::to_owned),
            signer,
        }
    }

    /// Signs `input` with this key's algorithm.
    pub(crate) fn sign(&self, input: &[u8]) -> Vec<u8> {
        self.sign_as(self.alg, input)
    }

    /// Signs `input` with `alg` (for RSA: any RSA algorithm).
    pub(crate) fn sign_as(&self, alg: Alg, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
            Signer::Rsa(k) => {
                let enc: &'static dyn RsaEncoding = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_SHA512,
                    other => panic!("not an rsa alg: {other}"),
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(enc, &rng, input, &mut sig).unwrap();
                sig
            }
        }
    }

    /// The public JWK, with `kid` and `alg`.
    pub(crate) fn jwk(&self) -> Value {
        let mut jwk = self.bare_jwk();
        let obj = jwk.as_object_mut().unwrap();
        if let Some(kid) = &self.kid {
            obj.insert("kid".into(), json!(kid));
        }
        obj.insert("alg".into(), json!(self.alg.name()));
        obj.insert("use".into(), json!("sig"));
        jwk
    }

    /// The public JWK with key material only (no kid, alg, use).
    pub(crate) fn bare_jwk(&self) -> Value {
        match &self.signer {
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = if n == 32 { "P-256" } else { "P-384" };
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64::encode(&point[1..=n]),
                    "y": b64::encode(&point[1 + n..]),
                })
            }
            Signer::Ed(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64::encode(k.public_key().as_ref()),
            }),
            Signer::Rsa(k) => rsa_public_jwk(k),
        }
    }
}

pub(crate) fn rsa_public_jwk(k: &RsaKeyPair) -> Value {
    let public = k.public_key();
    json!({
        "kty": "RSA",
        "n": b64::encode(public.modulus().big_endian_without_leading_zero()),
        "e": b64::encode(public.exponent().big_endian_without_leading_zero()),
    })
}

pub(crate) fn jwks_json(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

pub(crate) fn keyset(keys: &[&TestKey]) -> KeySet {
    let jwks: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    let (set, skipped) = KeySet::from_jwks_json(&jwks_json(&jwks)).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    set
}

/// `{"alg", "kid", "typ": "JWT"}` for `key`.
pub(crate) fn header(key: &TestKey) -> Value {
    let mut h = json!({ "alg": key.alg.name(), "typ": "JWT" });
    if let Some(kid) = &key.kid {
        h["kid"] = json!(kid);
    }
    h
}

/// Claims that pass [`rules`] at [`NOW`].
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "nbf": NOW - 10,
    })
}

/// Rules for [`ISS`] and [`AUD`] allowing every algorithm, leeway 0.
pub(crate) fn rules() -> IssuerRules {
    IssuerRules::new(ISS, vec![AUD.into()], Alg::ALL.to_vec())
        .unwrap()
        .with_leeway_secs(0)
        .unwrap()
}

/// Signs raw header and payload JSON text as a compact JWS.
pub(crate) fn mint_raw(key: &TestKey, header_json: &str, payload_json: &str) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header_json.as_bytes()),
        b64::encode(payload_json.as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

pub(crate) fn mint(key: &TestKey, header: &Value, claims: &Value) -> String {
    mint_raw(key, &header.to_string(), &claims.to_string())
}

/// A valid token for `key` with the standard header and claims.
pub(crate) fn token(key: &TestKey) -> String {
    mint(key, &header(key), &claims())
}
