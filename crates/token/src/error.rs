//! Why a token, a key, a key set or a rule set was refused.

use crate::alg::Alg;

/// Why a token was refused. [`TokenError::reason`] is the stable code for
/// logs, audit records and metrics; the client only ever sees a generic 401.
///
/// Messages never contain the token or signature bytes; values copied from
/// the token are truncated to [`crate::MAX_ECHO_CHARS`] and escaped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed compact JWS or JWT (parts, base64url, JSON, member types).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Longer than the issuer's limit (or the hard cap).
    #[error("token of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// A JSON object in the header or payload names a member twice.
    #[error("duplicate json member in token")]
    DuplicateMember,
    /// Header or payload nests deeper than [`crate::MAX_JSON_DEPTH`].
    #[error("json in token nests too deep")]
    NestingTooDeep,
    /// `alg` names no algorithm we verify (`none`, `HS256`, ...).
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlg(String),
    /// A supported algorithm that this issuer does not allow.
    #[error("algorithm `{0}` is not allowed for this issuer")]
    AlgNotAllowed(Alg),
    /// The header carries or points to a key (`jwk`, `jku`, `x5u`, `x5c`);
    /// such keys are never trusted (RFC 8725 section 3.10).
    #[error("header member `{0}` is refused: keys come only from the issuer's key set")]
    EmbeddedKey(&'static str),
    /// The header has `crit`; we implement no extensions.
    #[error("header member `crit` is refused: no extensions are supported")]
    CritUnsupported,
    /// The header has `b64` (RFC 7797 unencoded payload).
    #[error("header member `b64` is refused: unencoded payloads are not supported")]
    UnencodedPayload,
    /// `typ` is missing or not one the issuer accepts.
    #[error("token type {} is not accepted", .0.as_deref().map_or_else(|| "(absent)".to_owned(), |t| format!("`{t}`")))]
    BadTyp(Option<String>),
    /// No key in the issuer's set has this `kid` (the caller may refetch).
    #[error("no key with kid `{0}`")]
    UnknownKid(String),
    /// The token has no `kid` and no key in the set fits its algorithm.
    #[error("no key fits algorithm `{0}`")]
    NoKeyForAlg(Alg),
    /// The token has no `kid` and several keys fit its algorithm.
    #[error("token has no kid and several keys fit algorithm `{0}`")]
    AmbiguousKey(Alg),
    /// The key named by `kid` cannot verify this algorithm (key type,
    /// curve or the key's own `alg` differ).
    #[error("the key named by the token cannot verify `{0}`")]
    KeyMismatch(Alg),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (leeway included).
    #[error("token expired at {expires_at} (now {now})")]
    Expired { expires_at: i64, now: i64 },
    /// `nbf` is still ahead (leeway included).
    #[error("token not valid before {not_before} (now {now})")]
    NotYetValid { not_before: i64, now: i64 },
    /// `iat` lies in the future (leeway included).
    #[error("token issued in the future at {issued_at} (now {now})")]
    IssuedInFuture { issued_at: i64, now: i64 },
    /// `iss` is not the issuer whose rules were applied.
    #[error("wrong issuer `{0}`")]
    WrongIssuer(String),
    /// No `aud` value is one of the issuer's audiences.
    #[error("no accepted audience in token")]
    WrongAudience,
    /// A required claim is absent.
    #[error("missing claim `{0}`")]
    MissingClaim(String),
    /// A registered claim has the wrong JSON type (e.g. `exp` as a string).
    #[error("claim `{0}` has the wrong type")]
    BadClaimType(String),
    /// `cnf` is not an object, or its `x5t#S256` is not base64url of 32 bytes.
    #[error("bad confirmation claim: {0}")]
    BadCnf(&'static str),
    /// `cnf` binds the token by a method the gateway cannot check (DPoP's
    /// `jkt`, `jwk`, `jwe`, `jku`, `kid`, `x5t`...), or by none: accepting
    /// it as a bearer token would let a stolen sender-constrained token be
    /// replayed without its proof.
    #[error("confirmation method `{0}` is not supported (only `x5t#S256`)")]
    UnsupportedCnf(String),
}

impl TokenError {
    /// A stable snake_case code, e.g. `"expired"`, `"bad_signature"`.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::TooLarge { .. } => "too_large",
            TokenError::DuplicateMember => "duplicate_member",
            TokenError::NestingTooDeep => "nesting_too_deep",
            TokenError::UnsupportedAlg(_) => "unsupported_alg",
            TokenError::AlgNotAllowed(_) => "alg_not_allowed",
            TokenError::EmbeddedKey(_) => "embedded_key",
            TokenError::CritUnsupported => "crit_unsupported",
            TokenError::UnencodedPayload => "unencoded_payload",
            TokenError::BadTyp(_) => "bad_typ",
            TokenError::UnknownKid(_) => "unknown_kid",
            TokenError::NoKeyForAlg(_) => "no_key_for_alg",
            TokenError::AmbiguousKey(_) => "ambiguous_key",
            TokenError::KeyMismatch(_) => "key_mismatch",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired { .. } => "expired",
            TokenError::NotYetValid { .. } => "not_yet_valid",
            TokenError::IssuedInFuture { .. } => "issued_in_future",
            TokenError::WrongIssuer(_) => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::BadClaimType(_) => "bad_claim_type",
            TokenError::BadCnf(_) => "bad_cnf",
            TokenError::UnsupportedCnf(_) => "unsupported_cnf",
        }
    }
}

/// Why one JWK cannot be used to verify tokens.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// Not JSON, or not a JSON object.
    #[error("key is not a json object")]
    NotAnObject,
    /// The key names a member twice.
    #[error("key has a duplicate member")]
    DuplicateMember,
    /// The key holds private material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`).
    #[error("key holds private member `{0}`")]
    PrivateKey(&'static str),
    /// A symmetric (`oct`) key: we verify asymmetric signatures only.
    #[error("symmetric key (kty `oct`) is not used")]
    Symmetric,
    /// `kty` missing, not a string, or not `EC`, `RSA` or `OKP`.
    #[error("unsupported key type `{0}`")]
    UnsupportedKty(String),
    /// `crv` missing or not P-256, P-384 (EC) or Ed25519 (OKP).
    #[error("unsupported curve `{0}`")]
    UnsupportedCrv(String),
    /// `use` is present and not `sig`.
    #[error("key use `{0}` is not `sig`")]
    NotForSignatures(String),
    /// `key_ops` is present and lacks `verify`.
    #[error("key_ops does not include `verify`")]
    NoVerifyOp,
    /// `alg` names an algorithm we do not verify.
    #[error("unsupported key algorithm `{0}`")]
    UnsupportedAlg(String),
    /// `alg` names an algorithm the key type or curve cannot do.
    #[error("key algorithm `{0}` does not fit the key type")]
    AlgDoesNotFitKey(Alg),
    /// A member is missing, has the wrong type or is not strict base64url.
    #[error("key member `{0}` is missing or malformed")]
    BadMember(&'static str),
    /// RSA modulus shorter than [`crate::MIN_RSA_MODULUS_BITS`].
    #[error("rsa modulus of {0} bits is too short")]
    RsaTooShort(usize),
    /// RSA modulus longer than [`crate::MAX_RSA_MODULUS_BITS`].
    #[error("rsa modulus of {0} bits is too long")]
    RsaTooLong(usize),
    /// RSA modulus is even.
    #[error("rsa modulus is even")]
    RsaEvenModulus,
    /// RSA exponent below 3, even, or longer than
    /// [`crate::MAX_RSA_EXPONENT_BYTES`].
    #[error("rsa public exponent is invalid")]
    RsaBadExponent,
    /// The modulus has the ROCA fingerprint (CVE-2017-15361): its private
    /// key can be computed.
    #[error("rsa modulus has the roca fingerprint (cve-2017-15361)")]
    RsaRoca,
    /// The crypto provider refused the key (e.g. an EC point not on the curve).
    #[error("invalid public key")]
    Invalid,
    /// An Ed25519 key that is a point of small order: with it, the
    /// signature (R = identity, S = 0) verifies any message.
    #[error("ed25519 key is a point of small order")]
    Ed25519SmallOrder,
}

/// Why a JWKS document was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Larger than [`crate::MAX_JWKS_BYTES`].
    #[error("jwks of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not JSON (or nested deeper than [`crate::MAX_JSON_DEPTH`]).
    #[error("jwks is not valid json")]
    NotJson,
    /// An object in the document names a member twice.
    #[error("jwks has a duplicate json member")]
    DuplicateMember,
    /// The top level is not an object with a `keys` array.
    #[error("jwks has no `keys` array")]
    NoKeysArray,
    /// More keys than [`crate::MAX_KEYS`].
    #[error("jwks has {0} keys, more than the limit")]
    TooManyKeys(usize),
    /// Two keys share a `kid`.
    #[error("duplicate kid `{0}` in jwks")]
    DuplicateKid(String),
    /// A key holds private material: the identity provider or the
    /// configuration points at the wrong document.
    #[error("jwks key {index} holds private member `{member}`")]
    PrivateKey { index: usize, member: &'static str },
    /// No key can verify anything for us; `skipped` says why for each.
    #[error("no usable key in jwks ({} skipped)", .0.len())]
    NoUsableKeys(Vec<SkippedKey>),
}

impl JwksError {
    /// A stable snake_case code, e.g. `"duplicate_kid"`.
    pub fn reason(&self) -> &'static str {
        match self {
            JwksError::TooLarge(_) => "too_large",
            JwksError::NotJson => "not_json",
            JwksError::DuplicateMember => "duplicate_member",
            JwksError::NoKeysArray => "no_keys_array",
            JwksError::TooManyKeys(_) => "too_many_keys",
            JwksError::DuplicateKid(_) => "duplicate_kid",
            JwksError::PrivateKey { .. } => "private_key",
            JwksError::NoUsableKeys(_) => "no_usable_keys",
        }
    }
}

/// Why issuer rules were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    #[error("issuer is empty")]
    EmptyIssuer,
    #[error("no audience given")]
    NoAudiences,
    #[error("an audience is empty")]
    EmptyAudience,
    #[error("no algorithm allowed")]
    NoAlgorithms,
    #[error("leeway of {0} s exceeds the maximum")]
    LeewayTooLarge(u64),
    #[error("max token size {0} is zero or above the hard cap")]
    BadMaxTokenBytes(usize),
    #[error("a required claim name is empty")]
    EmptyClaimName,
    #[error("an accepted typ is empty")]
    EmptyTyp,
}

#[cfg(test)]
mod tests;

/// A key of a JWKS that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    /// The key's `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it cannot verify anything for us.
    pub reason: String,
}
