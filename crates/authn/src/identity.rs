//! The identity of a verified client certificate, and the SPIFFE
//! X.509-SVID profile rules
//! (<https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md>).

use aws_lc_rs::digest;
use portcullis_identity::{CertIdentity, SpiffeId, SpiffeIdError, Thumbprint, TrustDomain};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dn;

/// Longest certificate value (a URI SAN, a SPIFFE ID) quoted in an error
/// message: enough to recognise it, short enough for one log line.
pub const MAX_QUOTED_VALUE_LEN: usize = 256;

/// Context-specific tag of `uniformResourceIdentifier` in GeneralName.
const URI_TAG: u32 = 6;

/// Why a client certificate yields no identity. Every variant has a
/// stable [`reason_code`](Self::reason_code) for metrics and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("client certificate cannot be parsed: {0}")]
    Malformed(&'static str),
    #[error("x509-svid must hold exactly one uri san, this certificate holds {count}")]
    UriSanCount { count: usize },
    #[error("uri san `{uri}` is not a valid spiffe id: {reason}")]
    InvalidSpiffeId { uri: String, reason: SpiffeIdError },
    #[error(
        "spiffe id `{id}` is not accepted: its trust domain `{trust_domain}` is not configured"
    )]
    UntrustedTrustDomain { id: String, trust_domain: String },
    #[error("spiffe id `{id}` is not accepted: no spiffe trust domain is configured")]
    NoTrustDomains { id: String },
    #[error("x509-svid leaf must not be a ca certificate (basicConstraints ca is true)")]
    CaLeaf,
    #[error("x509-svid leaf key usage must not include {0}")]
    SigningKeyUsage(&'static str),
}

impl IdentityError {
    /// A short stable code: `no_certificate`, `malformed_certificate` or
    /// one of the `svid_*` codes.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Malformed(_) => "malformed_certificate",
            Self::UriSanCount { .. } => "svid_uri_san_count",
            Self::InvalidSpiffeId { .. } => "svid_invalid_spiffe_id",
            Self::UntrustedTrustDomain { .. } => "svid_untrusted_trust_domain",
            Self::NoTrustDomains { .. } => "svid_no_trust_domains",
            Self::CaLeaf => "svid_ca_leaf",
            Self::SigningKeyUsage(_) => "svid_signing_key_usage",
        }
    }

    /// Whether this is a breach of the X.509-SVID rules (as opposed to a
    /// missing or unparsable certificate).
    pub fn is_svid_violation(&self) -> bool {
        !matches!(self, Self::NoCertificate | Self::Malformed(_))
    }
}

/// The end of the validity of a verified chain: the earliest `notAfter`
/// (Unix seconds) of its certificates as the client sent them (leaf and
/// intermediates; the trust anchor's validity is not checked, as in the
/// handshake). `None` for an empty chain; a certificate that does not
/// parse counts as already expired, so a caller fails closed.
pub fn chain_not_after(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .map(|der| {
            X509Certificate::from_der(der.as_ref())
                .map_or(i64::MIN, |(_, c)| c.validity().not_after.timestamp())
        })
        .min()
}

/// Builds the identity of a client whose chain was verified; `chain[0]`
/// is the leaf (as returned by `peer_certificates()`). It does not verify
/// the chain: call it only on the chain of a completed handshake. Applies the
/// X.509-SVID rules when the leaf holds a URI SAN, so a certificate the
/// verifier would refuse never yields an identity here either.
pub fn identity_from_chain(
    chain: &[CertificateDer<'_>],
    trust_domains: &[TrustDomain],
) -> Result<CertIdentity, IdentityError> {
    let leaf = chain.first().ok_or(IdentityError::NoCertificate)?;
    let cert = parse_leaf(leaf)?;
    let spiffe_id = check_svid(&cert, trust_domains)?;
    let mut dns_sans = Vec::new();
    let mut email_sans = Vec::new();
    for name in san_names(&cert)? {
        match name {
            GeneralName::DNSName(d) => dns_sans.push((*d).to_owned()),
            GeneralName::RFC822Name(e) => email_sans.push((*e).to_owned()),
            _ => {}
        }
    }
    let digest = digest::digest(&digest::SHA256, leaf.as_ref());
    let thumbprint = <[u8; 32]>::try_from(digest.as_ref())
        .map(Thumbprint)
        .map_err(|_| IdentityError::Malformed("sha-256 digest has the wrong length"))?;
    Ok(CertIdentity {
        spiffe_id,
        subject: dn::rfc4514(cert.subject()),
        issuer: dn::rfc4514(cert.issuer()),
        subject_attrs: dn::attributes(cert.subject()),
        dns_sans,
        email_sans,
        thumbprint,
    })
}

pub(crate) fn parse_leaf<'a>(
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, IdentityError> {
    let (rest, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| IdentityError::Malformed("not a valid x.509 certificate"))?;
    if !rest.is_empty() {
        return Err(IdentityError::Malformed(
            "trailing data after the certificate",
        ));
    }
    Ok(cert)
}

/// The general names of the SAN extension; empty when there is none.
fn san_names<'a, 'b>(
    cert: &'b X509Certificate<'a>,
) -> Result<&'b [GeneralName<'a>], IdentityError> {
    let ext = cert
        .get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME)
        .map_err(|_| IdentityError::Malformed("duplicate subject alternative name extension"))?;
    match ext.map(|e| e.parsed_extension()) {
        None => Ok(&[]),
        Some(ParsedExtension::SubjectAlternativeName(san)) => Ok(&san.general_names),
        Some(_) => Err(IdentityError::Malformed(
            "subject alternative name extension cannot be parsed",
        )),
    }
}

/// Applies the X.509-SVID rules to a leaf with URI SANs and returns its
/// SPIFFE ID; `None` for a leaf without URI SAN (a plain certificate).
pub(crate) fn check_svid(
    cert: &X509Certificate<'_>,
    trust_domains: &[TrustDomain],
) -> Result<Option<SpiffeId>, IdentityError> {
    let names = san_names(cert)?;
    let uris: Vec<Option<&str>> = names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(Some(*u)),
            // A URI SAN that is not IA5 text still counts as a URI SAN.
            GeneralName::Invalid(tag, _) if tag.0 == URI_TAG => Some(None),
            _ => None,
        })
        .collect();
    let uri = match uris.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        more => return Err(IdentityError::UriSanCount { count: more.len() }),
    };
    let uri = uri.ok_or(IdentityError::Malformed("uri san is not ia5 text"))?;
    let id = SpiffeId::parse(uri).map_err(|reason| IdentityError::InvalidSpiffeId {
        uri: quoted(uri),
        reason,
    })?;
    if trust_domains.is_empty() {
        return Err(IdentityError::NoTrustDomains {
            id: quoted(id.as_str()),
        });
    }
    if !trust_domains
        .iter()
        .any(|td| td.as_str() == id.trust_domain())
    {
        return Err(IdentityError::UntrustedTrustDomain {
            id: quoted(id.as_str()),
            trust_domain: id.trust_domain().to_owned(),
        });
    }

    // X509-SVID §4.1: a leaf has `cA` false; §4.3: a leaf must not set
    // keyCertSign or cRLSign.
    let bc = cert
        .get_extension_unique(&OID_X509_EXT_BASIC_CONSTRAINTS)
        .map_err(|_| IdentityError::Malformed("duplicate basic constraints extension"))?;
    match bc.map(|e| e.parsed_extension()) {
        None => {}
        Some(ParsedExtension::BasicConstraints(bc)) if bc.ca => {
            return Err(IdentityError::CaLeaf);
        }
        Some(ParsedExtension::BasicConstraints(_)) => {}
        Some(_) => {
            return Err(IdentityError::Malformed(
                "basic constraints extension cannot be parsed",
            ))
        }
    }
    let ku = cert
        .get_extension_unique(&OID_X509_EXT_KEY_USAGE)
        .map_err(|_| IdentityError::Malformed("duplicate key usage extension"))?;
    match ku.map(|e| e.parsed_extension()) {
        None => {}
        Some(ParsedExtension::KeyUsage(ku)) => match (ku.key_cert_sign(), ku.crl_sign()) {
            (true, true) => return Err(IdentityError::SigningKeyUsage("keyCertSign and cRLSign")),
            (true, false) => return Err(IdentityError::SigningKeyUsage("keyCertSign")),
            (false, true) => return Err(IdentityError::SigningKeyUsage("cRLSign")),
            (false, false) => {}
        },
        Some(_) => {
            return Err(IdentityError::Malformed(
                "key usage extension cannot be parsed",
            ))
        }
    }
    Ok(Some(id))
}

/// A certificate value made safe to quote in a message: control
/// characters escaped, at most [`MAX_QUOTED_VALUE_LEN`] characters.
fn quoted(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == MAX_QUOTED_VALUE_LEN {
            out.push('…');
            break;
        }
        if c == '`' {
            out.push_str("\\`");
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
