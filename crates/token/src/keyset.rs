//! JWKS parsing (RFC 7517, 7518 section 6, RFC 8037) into pre-parsed keys.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::alg::{Alg, KeyFamily};
use crate::b64;
use crate::error::{JwkError, JwksError, SkippedKey, TokenError};
use crate::json::{self, JsonFault};
use crate::text::echo;

/// Largest JWKS document accepted: a few dozen 8192-bit RSA keys with
/// certificate chains fit well below this.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Most keys in one set: identity providers publish a handful (current,
/// next, previous); hundreds would only slow every `kid` lookup.
pub const MAX_KEYS: usize = 64;

/// Shortest RSA modulus accepted (RFC 7518 section 3.3; NIST SP 800-131A).
pub const MIN_RSA_MODULUS_BITS: usize = 2048;

/// Longest RSA modulus accepted: the crypto provider's upper bound, and
/// bigger keys make each verification a denial-of-service lever.
pub const MAX_RSA_MODULUS_BITS: usize = 8192;

/// Longest RSA public exponent (bytes, after leading zeros): real keys use
/// 65537; huge exponents only make verification slow.
pub const MAX_RSA_EXPONENT_BYTES: usize = 4;

/// JWK members that hold private key material (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Small primes of the ROCA fingerprint test (Nemec et al., CCS 2017).
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Content identity of a [`KeySet`]: SHA-256 over the canonical encoding of
/// its usable keys, independent of their order in the document. An
/// unchanged refresh keeps the version; any key change gives a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetVersion([u8; 32]);

impl KeySetVersion {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes in lowercase hex, for logs.
    pub fn short_hex(&self) -> String {
        let mut s = String::with_capacity(16);
        for b in self.0.iter().take(8) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for KeySetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySetVersion({})", self.short_hex())
    }
}

impl fmt::Display for KeySetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short_hex())
    }
}

/// One public key, parsed once for every algorithm it may verify.
///
/// The key material is `x`/`y` (EC), `x` (OKP) or `n`/`e` (RSA); `x5c`,
/// `x5t` and other members of the JWK are ignored.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Option<Alg>,
    family: KeyFamily,
    // INVARIANT: non-empty; every entry's alg has this key's family and
    // equals `alg` when the JWK named one.
    parsed: Vec<(Alg, ParsedPublicKey)>,
    canonical: Vec<u8>,
}

impl VerifyingKey {
    /// Parses one JWK (a JSON object). Keys that cannot verify signatures
    /// for us (see [`JwkError`]) are refused.
    pub fn from_jwk_json(bytes: &[u8]) -> Result<Self, JwkError> {
        let map = json::parse_object(bytes).map_err(|f| match f {
            JsonFault::Duplicate => JwkError::DuplicateMember,
            _ => JwkError::NotAnObject,
        })?;
        Self::from_jwk(&map)
    }

    /// Parses one JWK from an already parsed object.
    pub(crate) fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, JwkError> {
        if let Some(member) = private_member(jwk) {
            return Err(JwkError::PrivateKey(member));
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(JwkError::BadMember("kid")),
        };
        let kty = match jwk.get("kty") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(JwkError::BadMember("kty")),
            None => return Err(JwkError::UnsupportedKty("(absent)".into())),
        };
        if kty == "oct" {
            return Err(JwkError::Symmetric);
        }
        match jwk.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(Value::String(u)) => return Err(JwkError::NotForSignatures(echo(u))),
            Some(_) => return Err(JwkError::BadMember("use")),
        }
        match jwk.get("key_ops") {
            None => {}
            Some(Value::Array(ops)) => {
                if ops.iter().any(|op| !op.is_string()) {
                    return Err(JwkError::BadMember("key_ops"));
                }
                if !ops.iter().any(|op| op == "verify") {
                    return Err(JwkError::NoVerifyOp);
                }
            }
            Some(_) => return Err(JwkError::BadMember("key_ops")),
        }
        let alg = match jwk.get("alg") {
            None => None,
            Some(Value::String(a)) => {
                Some(Alg::from_name(a).ok_or_else(|| JwkError::UnsupportedAlg(echo(a)))?)
            }
            Some(_) => return Err(JwkError::BadMember("alg")),
        };

        let mut canonical = Vec::new();
        push_field(&mut canonical, kid.as_deref().map(str::as_bytes));
        push_field(&mut canonical, alg.map(|a| a.name().as_bytes()));

        let (family, parsed) = match kty {
            "EC" => {
                let (family, coord_len) = match jwk.get("crv") {
                    Some(Value::String(c)) if c == "P-256" => (KeyFamily::EcP256, 32),
                    Some(Value::String(c)) if c == "P-384" => (KeyFamily::EcP384, 48),
                    Some(Value::String(c)) => return Err(JwkError::UnsupportedCrv(echo(c))),
                    _ => return Err(JwkError::BadMember("crv")),
                };
                let x = fixed_member(jwk, "x", coord_len)?;
                let y = fixed_member(jwk, "y", coord_len)?;
                let mut point = Vec::with_capacity(1 + 2 * coord_len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let alg = single_alg(alg, family)?;
                let key = ParsedPublicKey::new(alg.verification(), &point)
                    .map_err(|_| JwkError::Invalid)?;
                canonical.extend_from_slice(if family == KeyFamily::EcP256 {
                    b"P-256"
                } else {
                    b"P-384"
                });
                push_field(&mut canonical, Some(&point));
                (family, vec![(alg, key)])
            }
            "OKP" => {
                match jwk.get("crv") {
                    Some(Value::String(c)) if c == "Ed25519" => {}
                    Some(Value::String(c)) => return Err(JwkError::UnsupportedCrv(echo(c))),
                    _ => return Err(JwkError::BadMember("crv")),
                }
                let x = fixed_member(jwk, "x", 32)?;
                if is_small_order_ed25519(&x) {
                    return Err(JwkError::Ed25519SmallOrder);
                }
                let alg = single_alg(alg, KeyFamily::Ed25519)?;
                let key =
                    ParsedPublicKey::new(alg.verification(), &x).map_err(|_| JwkError::Invalid)?;
                canonical.extend_from_slice(b"Ed25519");
                push_field(&mut canonical, Some(&x));
                (KeyFamily::Ed25519, vec![(alg, key)])
            }
            "RSA" => {
                let n_raw = b64_member(jwk, "n")?;
                let e_raw = b64_member(jwk, "e")?;
                let n = strip_leading_zeros(&n_raw);
                let e = strip_leading_zeros(&e_raw);
                check_rsa(n, e)?;
                let algs: Vec<Alg> = match alg {
                    Some(a) if a.family() == KeyFamily::Rsa => vec![a],
                    Some(a) => return Err(JwkError::AlgDoesNotFitKey(a)),
                    None => Alg::RSA.to_vec(),
                };
                let components = RsaPublicKeyComponents { n, e };
                let mut parsed = Vec::with_capacity(algs.len());
                for a in algs {
                    let params = a.rsa_parameters().ok_or(JwkError::AlgDoesNotFitKey(a))?;
                    let key = components
                        .to_parsed_public_key(params)
                        .map_err(|_| JwkError::Invalid)?;
                    parsed.push((a, key));
                }
                canonical.extend_from_slice(b"RSA");
                push_field(&mut canonical, Some(n));
                push_field(&mut canonical, Some(e));
                (KeyFamily::Rsa, parsed)
            }
            other => return Err(JwkError::UnsupportedKty(echo(other))),
        };
        Ok(Self {
            kid,
            alg,
            family,
            parsed,
            canonical,
        })
    }

    /// The key's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's own `alg`, if the JWK named one.
    pub fn alg(&self) -> Option<Alg> {
        self.alg
    }

    /// Whether this key may verify tokens signed with `alg`.
    pub fn supports(&self, alg: Alg) -> bool {
        self.parsed.iter().any(|(a, _)| *a == alg)
    }

    /// Key type for logs: `"EC P-256"`, `"EC P-384"`, `"RSA"` or `"OKP Ed25519"`.
    pub fn key_type(&self) -> &'static str {
        match self.family {
            KeyFamily::EcP256 => "EC P-256",
            KeyFamily::EcP384 => "EC P-384",
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ed25519 => "OKP Ed25519",
        }
    }

    /// Checks one signature over `message` with this key and `alg`: the
    /// one verification primitive behind [`crate::verify`].
    ///
    /// ECDSA signatures must be the JOSE fixed-size `r || s`; the crypto
    /// provider refuses `r` or `s` equal to zero or not below the group
    /// order. RSA signatures must be as long as the modulus.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        let key = self
            .parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, k)| k)
            .ok_or(TokenError::KeyMismatch(alg))?;
        if let Some(len) = alg.ecdsa_signature_len() {
            if signature.len() != len {
                return Err(TokenError::BadSignature);
            }
        }
        key.verify_sig(message, signature)
            .map_err(|_| TokenError::BadSignature)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("type", &self.key_type())
            .field("alg", &self.alg)
            .finish()
    }
}

/// The verified key set of one issuer. Immutable; a refresh replaces it
/// whole.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    version: KeySetVersion,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    ///
    /// Keys that cannot verify anything for us (symmetric `oct`,
    /// unsupported `kty`/`crv`/`alg`, `use` other than `sig`, `key_ops`
    /// without `verify`, RSA moduli outside
    /// [`MIN_RSA_MODULUS_BITS`]..=[`MAX_RSA_MODULUS_BITS`], bad exponents,
    /// ROCA moduli, invalid EC points) are skipped and reported.
    ///
    /// The whole set is refused when it is not strict JSON, has no `keys`
    /// array, has more than [`MAX_KEYS`] keys, repeats a `kid` among its
    /// usable keys (which key would verify would be ambiguous; a skipped
    /// key sharing a usable key's `kid`, such as an issuer's `use: enc`
    /// key, verifies nothing and is no ambiguity), holds any private key
    /// material, or has no usable key.
    pub fn from_jwks_json(bytes: &[u8]) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(bytes.len()));
        }
        let doc = json::parse_object(bytes).map_err(|f| match f {
            JsonFault::Duplicate => JwksError::DuplicateMember,
            JsonFault::NotObject => JwksError::NoKeysArray,
            JsonFault::Syntax | JsonFault::TooDeep => JwksError::NotJson,
        })?;
        let Some(Value::Array(entries)) = doc.get("keys") else {
            return Err(JwksError::NoKeysArray);
        };
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys(entries.len()));
        }

        // Whole-set checks first: one bad entry taints the document.
        for (index, entry) in entries.iter().enumerate() {
            let Value::Object(jwk) = entry else { continue };
            if let Some(member) = private_member(jwk) {
                return Err(JwksError::PrivateKey { index, member });
            }
        }

        let mut keys = Vec::with_capacity(entries.len());
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let result = match entry {
                Value::Object(jwk) => VerifyingKey::from_jwk(jwk),
                _ => Err(JwkError::NotAnObject),
            };
            match result {
                Ok(key) => keys.push(key),
                Err(e) => skipped.push(SkippedKey {
                    index,
                    kid: entry.get("kid").and_then(Value::as_str).map(str::to_owned),
                    reason: e.to_string(),
                }),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys(skipped));
        }
        let mut kids: Vec<&str> = Vec::with_capacity(keys.len());
        for kid in keys.iter().filter_map(VerifyingKey::kid) {
            if kids.contains(&kid) {
                return Err(JwksError::DuplicateKid(echo(kid)));
            }
            kids.push(kid);
        }
        let version = version_of(&keys);
        Ok((KeySet { keys, version }, skipped))
    }

    /// Content identity, see [`KeySetVersion`].
    pub fn version(&self) -> KeySetVersion {
        self.version
    }

    /// Number of usable keys (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set without usable keys is refused at load.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid` of every usable key, in document order.
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(VerifyingKey::kid)
    }

    /// Every usable key, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.keys.iter()
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid() == Some(kid))
    }

    /// Chooses the key for a token: by `kid` when the token has one,
    /// otherwise the single key that fits `alg`.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&VerifyingKey, TokenError> {
        match kid {
            Some(kid) => {
                let key = self
                    .get(kid)
                    .ok_or_else(|| TokenError::UnknownKid(echo(kid)))?;
                if key.supports(alg) {
                    Ok(key)
                } else {
                    Err(TokenError::KeyMismatch(alg))
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.supports(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(TokenError::NoKeyForAlg(alg)),
                    (Some(_), Some(_)) => Err(TokenError::AmbiguousKey(alg)),
                }
            }
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("version", &self.version)
            .field("keys", &self.keys)
            .finish()
    }
}

fn private_member(jwk: &Map<String, Value>) -> Option<&'static str> {
    PRIVATE_MEMBERS.into_iter().find(|m| jwk.contains_key(*m))
}

fn b64_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .and_then(b64::decode)
        .ok_or(JwkError::BadMember(name))
}

/// A coordinate of exactly `len` bytes (RFC 7518 section 6.2.1.2: full size).
fn fixed_member(
    jwk: &Map<String, Value>,
    name: &'static str,
    len: usize,
) -> Result<Vec<u8>, JwkError> {
    let bytes = b64_member(jwk, name)?;
    if bytes.len() == len {
        Ok(bytes)
    } else {
        Err(JwkError::BadMember(name))
    }
}

fn single_alg(declared: Option<Alg>, family: KeyFamily) -> Result<Alg, JwkError> {
    let natural = match family {
        KeyFamily::EcP256 => Alg::Es256,
        KeyFamily::EcP384 => Alg::Es384,
        KeyFamily::Ed25519 => Alg::EdDsa,
        KeyFamily::Rsa => return Err(JwkError::Invalid),
    };
    match declared {
        None => Ok(natural),
        Some(a) if a == natural => Ok(a),
        Some(a) => Err(JwkError::AlgDoesNotFitKey(a)),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), JwkError> {
    let Some(first) = n.first() else {
        return Err(JwkError::BadMember("n"));
    };
    let bits = (n.len().saturating_sub(1))
        .saturating_mul(8)
        .saturating_add(8 - first.leading_zeros() as usize);
    if bits < MIN_RSA_MODULUS_BITS {
        return Err(JwkError::RsaTooShort(bits));
    }
    if bits > MAX_RSA_MODULUS_BITS {
        return Err(JwkError::RsaTooLong(bits));
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err(JwkError::RsaEvenModulus);
    }
    if e.is_empty() || e.len() > MAX_RSA_EXPONENT_BYTES {
        return Err(JwkError::RsaBadExponent);
    }
    let e_value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if e_value < 3 || e_value % 2 == 0 {
        return Err(JwkError::RsaBadExponent);
    }
    if has_roca_fingerprint(n) {
        return Err(JwkError::RsaRoca);
    }
    Ok(())
}

/// ROCA (CVE-2017-15361): moduli made by the vulnerable Infineon library
/// are, modulo each small prime p, a power of 65537. A random modulus
/// passes this test for all 38 primes with probability about 2^-154.
pub(crate) fn has_roca_fingerprint(n: &[u8]) -> bool {
    ROCA_PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        let generator = 65537 % p;
        let mut x = 1;
        loop {
            if x == residue {
                return true;
            }
            x = x * generator % p;
            if x == 1 {
                return false;
            }
        }
    })
}

/// Appends a length-prefixed field, or a marker for an absent one.
fn push_field(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => buf.push(0),
        Some(bytes) => {
            buf.push(1);
            buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            buf.extend_from_slice(bytes);
        }
    }
}

fn version_of(keys: &[VerifyingKey]) -> KeySetVersion {
    let mut encodings: Vec<&[u8]> = keys.iter().map(|k| k.canonical.as_slice()).collect();
    encodings.sort_unstable();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"portcullis-jwks-v1");
    for enc in encodings {
        ctx.update(&(enc.len() as u64).to_be_bytes());
        ctx.update(enc);
    }
    KeySetVersion(<[u8; 32]>::try_from(ctx.finish().as_ref()).unwrap_or_default())
}

/// The two Ed25519 points of order 8 (their y coordinates, little-endian,
/// sign bit clear). The other small-order points have y = 0, 1 or p - 1,
/// read by [`is_small_order_ed25519`] from their shape.
const ED25519_ORDER_8: [[u8; 32]; 2] = [
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Whether `x` encodes an Ed25519 point of small order (orders 1, 2, 4
/// and 8), non-canonical encodings (y = p, p + 1) included; the sign bit
/// (the top bit of the last byte) is not compared. aws-lc accepts such
/// keys, and with one the signature (R = identity, S = 0) verifies any
/// message, or one message in eight: anybody could forge tokens for its
/// `kid`.
fn is_small_order_ed25519(x: &[u8]) -> bool {
    let Ok(mut y) = <[u8; 32]>::try_from(x) else {
        return false;
    };
    let Some((last, rest)) = y.split_last_mut() else {
        return false;
    };
    *last &= 0x7f;
    let (last, rest) = (*last, &*rest);
    let Some((&first, middle)) = rest.split_first() else {
        return false;
    };
    // y = 0 (order 4) or 1 (the identity, order 1).
    let zero_or_one = first <= 1 && middle.iter().all(|&b| b == 0) && last == 0;
    // y = p - 1 (order 2), p (non-canonical 0) or p + 1 (non-canonical 1),
    // p = 2^255 - 19: 0xec..=0xee, then all ones but the sign bit.
    let near_p =
        (0xec..=0xee).contains(&first) && middle.iter().all(|&b| b == 0xff) && last == 0x7f;
    zero_or_one || near_p || ED25519_ORDER_8.contains(&y)
}

#[cfg(test)]
mod tests;
