//! Who a request is made by.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::{ClaimPath, SpiffeId, TokenIdentity};

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    /// Lowercase hex, as written in audit records and policy files.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            for nibble in [b >> 4, b & 0xf] {
                s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        s
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (pair.first()?, pair.get(1)?);
            *o = (hex_val(*hi)? << 4) | hex_val(*lo)?;
        }
        Some(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.to_hex())
    }
}

impl serde::Serialize for Thumbprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The identity taken from a client certificate whose chain was verified.
///
/// Only the verifier in `portcullis-authn` builds one for live traffic
/// (tests and `policy eval` build them from JSON input).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertIdentity {
    /// The SPIFFE ID, when the certificate is an X.509-SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// Subject distinguished name in RFC 4514 form, e.g. `CN=web,O=Example`.
    pub subject: String,
    /// Issuer distinguished name in RFC 4514 form.
    pub issuer: String,
    /// Subject attributes as (short name, value), in certificate order,
    /// e.g. `("CN", "web")`.
    pub subject_attrs: Vec<(String, String)>,
    /// DNS names from the subject alternative name extension.
    pub dns_sans: Vec<String>,
    /// Email addresses (rfc822Name) from the subject alternative name extension.
    pub email_sans: Vec<String>,
    /// SHA-256 of the leaf certificate's DER.
    pub thumbprint: Thumbprint,
}

/// The principal a request is made by: a client certificate, a bearer
/// token, both (a workload acting for a user), or neither (anonymous, on a
/// listener with `client_auth: optional` and no token).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    pub cert: Option<CertIdentity>,
    pub token: Option<Arc<TokenIdentity>>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn from_cert(cert: CertIdentity) -> Self {
        Self {
            cert: Some(cert),
            token: None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.cert.is_none() && self.token.is_none()
    }

    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.cert.as_ref().and_then(|c| c.spiffe_id.as_ref())
    }

    /// A name for logs and audit records: the token subject (the user a
    /// request acts for), else the SPIFFE ID, else the certificate subject,
    /// else `anonymous`.
    pub fn display_name(&self) -> Cow<'_, str> {
        if let Some(sub) = self.token.as_ref().and_then(|t| t.subject.as_deref()) {
            return Cow::Borrowed(sub);
        }
        match &self.cert {
            Some(c) => match &c.spiffe_id {
                Some(id) => Cow::Borrowed(id.as_str()),
                None => Cow::Borrowed(c.subject.as_str()),
            },
            None => Cow::Borrowed("anonymous"),
        }
    }

    /// Looks up a single-valued attribute; `None` when the principal does
    /// not have it (a condition over a missing attribute never holds).
    pub fn attribute(&self, attr: &AttributeRef) -> Option<&str> {
        match attr {
            AttributeRef::TokenIssuer => return self.token.as_ref().map(|t| t.issuer.as_str()),
            AttributeRef::TokenSubject => {
                return self.token.as_ref().and_then(|t| t.subject.as_deref())
            }
            AttributeRef::TokenClaim(path) => {
                return self
                    .token
                    .as_ref()
                    .and_then(|t| t.claim(path))
                    .and_then(serde_json::Value::as_str)
            }
            _ => {}
        }
        let cert = self.cert.as_ref()?;
        match attr {
            AttributeRef::SpiffeId => cert.spiffe_id.as_ref().map(SpiffeId::as_str),
            AttributeRef::TrustDomain => cert.spiffe_id.as_ref().map(SpiffeId::trust_domain),
            AttributeRef::SpiffePath => cert.spiffe_id.as_ref().map(SpiffeId::path),
            AttributeRef::SpiffeSegment(n) => {
                cert.spiffe_id.as_ref().and_then(|id| id.segments().nth(*n))
            }
            AttributeRef::CertSubject => Some(cert.subject.as_str()),
            AttributeRef::CertIssuer => Some(cert.issuer.as_str()),
            AttributeRef::CertSubjectAttr(key) => cert
                .subject_attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str()),
            AttributeRef::TokenIssuer
            | AttributeRef::TokenSubject
            | AttributeRef::TokenClaim(_) => None,
        }
    }
}

/// A reference to a principal attribute, as written in policy conditions.
///
/// Syntax: `spiffe.id`, `spiffe.trust_domain`, `spiffe.path`,
/// `spiffe.segment[N]` (0-based), `cert.subject`, `cert.issuer`,
/// `cert.subject.<ATTR>` (e.g. `cert.subject.CN`, `cert.subject.OU`),
/// `token.iss`, `token.sub`, `token.claim.<PATH>` (a string claim, e.g.
/// `token.claim.tenant` or `token.claim.org.id`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttributeRef {
    TokenIssuer,
    TokenSubject,
    TokenClaim(ClaimPath),
    SpiffeId,
    TrustDomain,
    SpiffePath,
    SpiffeSegment(usize),
    CertSubject,
    CertIssuer,
    CertSubjectAttr(String),
}

impl AttributeRef {
    /// Parses the syntax above; the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        Ok(match s {
            "spiffe.id" => Self::SpiffeId,
            "spiffe.trust_domain" => Self::TrustDomain,
            "spiffe.path" => Self::SpiffePath,
            "cert.subject" => Self::CertSubject,
            "cert.issuer" => Self::CertIssuer,
            "token.iss" => Self::TokenIssuer,
            "token.sub" => Self::TokenSubject,
            _ => {
                if let Some(n) = s
                    .strip_prefix("spiffe.segment[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    let n = n
                        .parse::<usize>()
                        .map_err(|_| "spiffe.segment[N] needs a whole number N")?;
                    Self::SpiffeSegment(n)
                } else if let Some(k) = s.strip_prefix("cert.subject.") {
                    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err("cert.subject.<ATTR> needs an attribute name such as CN or OU");
                    }
                    Self::CertSubjectAttr(k.to_owned())
                } else if let Some(p) = s.strip_prefix("token.claim.") {
                    Self::TokenClaim(ClaimPath::parse(p)?)
                } else {
                    return Err("unknown attribute: expected spiffe.id, spiffe.trust_domain, spiffe.path, spiffe.segment[N], cert.subject, cert.issuer, cert.subject.<ATTR>, token.iss, token.sub or token.claim.<PATH>");
                }
            }
        })
    }
}

impl fmt::Display for AttributeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SpiffeId => f.write_str("spiffe.id"),
            Self::TrustDomain => f.write_str("spiffe.trust_domain"),
            Self::SpiffePath => f.write_str("spiffe.path"),
            Self::SpiffeSegment(n) => write!(f, "spiffe.segment[{n}]"),
            Self::CertSubject => f.write_str("cert.subject"),
            Self::CertIssuer => f.write_str("cert.issuer"),
            Self::CertSubjectAttr(k) => write!(f, "cert.subject.{k}"),
            Self::TokenIssuer => f.write_str("token.iss"),
            Self::TokenSubject => f.write_str("token.sub"),
            Self::TokenClaim(p) => write!(f, "token.claim.{p}"),
        }
    }
}

#[cfg(test)]
mod tests;
