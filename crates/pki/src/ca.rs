//! Certificate authorities, issued certificates and revocation lists.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_identity::SpiffeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::PkiError;

/// Serial number length in bytes: 128 random bits, well above the 64 bits
/// the CA/Browser Forum requires and under RFC 5280's 20-octet limit.
pub const SERIAL_LEN: usize = 16;
/// How far `not_before` is set in the past by default, so a verifier whose
/// clock runs a little behind the issuer's still accepts a new certificate.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(60 * 60);
/// Default lifetime of a leaf certificate: 90 days, short enough that a
/// forgotten test certificate does not live on for years.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Lifetime of a root CA: 10 years, so a dev PKI outlives its project.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of an intermediate CA: 5 years (and never past its issuer).
pub const INTERMEDIATE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Usage {
    /// `clientAuth` only.
    #[default]
    Client,
    /// `serverAuth` only.
    Server,
    /// Both `serverAuth` and `clientAuth`.
    Both,
}

/// What to put into a certificate issued by [`Ca::issue`].
///
/// Build one with [`IssueRequest::client`] or [`IssueRequest::server`] and
/// change the fields you need; `is_ca`, `cert_sign_usage` and
/// `extra_uri_sans` exist only to make invalid certificates for negative
/// tests.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Subject common name; empty for a subject without CN (common for
    /// SPIFFE X.509-SVIDs).
    pub common_name: String,
    /// Subject organization (O).
    pub organization: Option<String>,
    /// Subject organizational unit (OU).
    pub organizational_unit: Option<String>,
    /// SPIFFE ID, written as the first URI SAN.
    pub spiffe_id: Option<SpiffeId>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP address SANs.
    pub ips: Vec<IpAddr>,
    /// Email (rfc822Name) SANs.
    pub emails: Vec<String>,
    /// Extended key usage.
    pub usage: Usage,
    /// Start of validity; defaults to now minus [`NOT_BEFORE_BACKDATE`].
    pub not_before: SystemTime,
    /// End of validity; defaults to now plus [`DEFAULT_LEAF_VALIDITY`].
    pub not_after: SystemTime,
    /// Negative tests only: issue the leaf with `CA:true` (path length 0)
    /// and the CA key usages.
    pub is_ca: bool,
    /// Negative tests only: add `keyCertSign` and `cRLSign` to the key
    /// usage of a `CA:false` leaf.
    pub cert_sign_usage: bool,
    /// Negative tests only: more URI SANs, written after the SPIFFE ID.
    pub extra_uri_sans: Vec<String>,
}

impl Default for IssueRequest {
    fn default() -> Self {
        let now = SystemTime::now();
        Self {
            common_name: String::new(),
            organization: None,
            organizational_unit: None,
            spiffe_id: None,
            dns: Vec::new(),
            ips: Vec::new(),
            emails: Vec::new(),
            usage: Usage::Client,
            not_before: now.checked_sub(NOT_BEFORE_BACKDATE).unwrap_or(now),
            not_after: now.checked_add(DEFAULT_LEAF_VALIDITY).unwrap_or(now),
            is_ca: false,
            cert_sign_usage: false,
            extra_uri_sans: Vec::new(),
        }
    }
}

impl IssueRequest {
    /// A client certificate with this common name and default validity.
    pub fn client(common_name: &str) -> Self {
        Self {
            common_name: common_name.to_owned(),
            ..Self::default()
        }
    }

    /// A server certificate for `host` (a DNS name or an IP address),
    /// which is also its common name.
    pub fn server(host: &str) -> Self {
        let mut req = Self {
            common_name: host.to_owned(),
            usage: Usage::Server,
            ..Self::default()
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => req.ips.push(ip),
            Err(_) => req.dns.push(host.to_owned()),
        }
        req
    }
}

/// A certificate with its private key.
///
/// `Debug` shows the certificate and never the key.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: Zeroizing<String>,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The serial number, big-endian, as given to [`Ca::crl`].
    pub serial: Vec<u8>,
    key_der: Zeroizing<Vec<u8>>,
}

impl CertifiedKey {
    /// The certificate as a rustls type.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }

    /// The private key as a rustls type (PKCS#8). The returned copy is
    /// not zeroized on drop.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.to_vec().into())
    }

    /// The serial number as lowercase hex.
    pub fn serial_hex(&self) -> String {
        to_hex(&self.serial)
    }
}

impl fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("serial", &self.serial_hex())
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// A certificate authority that can issue certificates and revocation
/// lists. `Debug` never shows its key.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: Zeroizing<String>,
    key_id: KeyIdMethod,
    subject: String,
    not_after: SystemTime,
    may_issue_ca: bool,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("may_issue_ca", &self.may_issue_ca)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// A new self-signed root CA (no path length limit).
    pub fn new_root(common_name: &str) -> Result<Ca, PkiError> {
        let now = SystemTime::now();
        let not_after = now.checked_add(CA_VALIDITY).unwrap_or(now);
        let mut params = ca_params(common_name, now, not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        Ok(Self::assemble(
            params,
            key,
            cert.der().clone(),
            common_name,
            not_after,
            true,
        ))
    }

    /// A new intermediate CA issued by this CA, limited to path length 0:
    /// it can issue leaf certificates only. Its validity ends no later
    /// than this CA's.
    pub fn new_intermediate(&self, common_name: &str) -> Result<Ca, PkiError> {
        if !self.may_issue_ca {
            return Err(PkiError::PathLenExhausted {
                subject: self.subject.clone(),
            });
        }
        let now = SystemTime::now();
        let not_after = now
            .checked_add(INTERMEDIATE_VALIDITY)
            .unwrap_or(now)
            .min(self.not_after);
        let mut params = ca_params(common_name, now, not_after)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Self::assemble(
            params,
            key,
            cert.der().clone(),
            common_name,
            not_after,
            false,
        ))
    }

    /// Loads an existing CA from its certificate and PKCS#8 (or SEC1)
    /// private key, both PEM. The certificate must say `CA:true` and the
    /// key must belong to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| pem_error(e, "certificate"))?;
        let (rest, x509) = X509Certificate::from_der(&cert_der)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PkiError::BadCertificate(
                "trailing data after the certificate".to_owned(),
            ));
        }
        let subject = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bc = x509
            .basic_constraints()
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?
            .map(|ext| ext.value.clone());
        let may_issue_ca = match bc {
            Some(bc) if bc.ca => bc.path_len_constraint != Some(0),
            _ => return Err(PkiError::NotACa { subject }),
        };
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| pem_error(e, "private key"))?;
        let key = KeyPair::try_from(&key_der).map_err(|_| PkiError::BadKey)?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(PkiError::KeyMismatch { subject });
        }
        let key_id = x509
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let not_after = UNIX_EPOCH
            .checked_add(Duration::from_secs(
                u64::try_from(x509.validity().not_after.timestamp()).unwrap_or(0),
            ))
            .unwrap_or(UNIX_EPOCH);
        let key_pem = Zeroizing::new(key.serialize_pem());
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        let cert_der = cert_der.into_owned();
        Ok(Ca {
            issuer,
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key_pem,
            key_id,
            subject,
            not_after,
            may_issue_ca,
        })
    }

    fn assemble(
        params: CertificateParams,
        key: KeyPair,
        cert_der: CertificateDer<'static>,
        subject: &str,
        not_after: SystemTime,
        may_issue_ca: bool,
    ) -> Ca {
        let key_id = KeyIdMethod::PreSpecified(params.key_identifier(&key));
        let key_pem = Zeroizing::new(key.serialize_pem());
        Ca {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key_pem,
            key_id,
            subject: subject.to_owned(),
            not_after,
            may_issue_ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as a rustls type.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The CA's PKCS#8 private key, PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.key_pem.clone()
    }

    /// Issues a leaf certificate (or, for negative tests, a CA-flagged
    /// one) with a new P-256 key.
    pub fn issue(&self, req: &IssueRequest) -> Result<CertifiedKey, PkiError> {
        if req.not_after <= req.not_before {
            return Err(PkiError::InvalidValidity);
        }
        let mut params = CertificateParams::default();
        params.not_before = req.not_before.into();
        params.not_after = req.not_after.into();
        params.distinguished_name = DistinguishedName::new();
        if !req.common_name.is_empty() {
            params
                .distinguished_name
                .push(DnType::CommonName, req.common_name.as_str());
        }
        if let Some(o) = &req.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, o.as_str());
        }
        if let Some(ou) = &req.organizational_unit {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou.as_str());
        }
        let uris = req
            .spiffe_id
            .iter()
            .map(|id| id.as_str().to_owned())
            .chain(req.extra_uri_sans.iter().cloned());
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI(ia5("uri san", &uri)?));
        }
        for dns in &req.dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(ia5("dns san", dns)?));
        }
        for ip in &req.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for email in &req.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(ia5("email san", email)?));
        }
        if req.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            if req.cert_sign_usage {
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
                params.key_usages.push(KeyUsagePurpose::CrlSign);
            }
        }
        params.extended_key_usages = match req.usage {
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial()?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            cert_der: cert.der().to_vec(),
            serial,
            key_der: Zeroizing::new(key.serialize_der()),
        })
    }

    /// A CRL signed by this CA, listing `revoked_serials` (big-endian
    /// serial numbers, e.g. [`CertifiedKey::serial`]) as revoked now. It is
    /// issued now and its `nextUpdate` is `next_update_in` from now. The
    /// CRL number is the current Unix time in seconds, so later CRLs get
    /// larger numbers. Returns PEM.
    pub fn crl(
        &self,
        revoked_serials: &[Vec<u8>],
        next_update_in: Duration,
    ) -> Result<String, PkiError> {
        let now = SystemTime::now();
        let next_update = now.checked_add(next_update_in).unwrap_or(now);
        let mut revoked_certs = Vec::with_capacity(revoked_serials.len());
        for (index, serial) in revoked_serials.iter().enumerate() {
            if serial.is_empty() {
                return Err(PkiError::EmptySerial { index });
            }
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: now.into(),
                reason_code: None,
                invalidity_date: None,
            });
        }
        let crl_number = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_be_bytes();
        let params = CertificateRevocationListParams {
            this_update: now.into(),
            next_update: next_update.into(),
            crl_number: SerialNumber::from_slice(&crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.key_id.clone(),
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// The serial number of a PEM certificate, big-endian without leading
/// zero bytes (the form [`Ca::crl`] takes).
pub fn cert_serial(cert_pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| pem_error(e, "certificate"))?;
    let (_, x509) =
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    let raw = x509.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    Ok(raw.get(start..).unwrap_or_default().to_vec())
}

fn ca_params(
    common_name: &str,
    now: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = now.checked_sub(NOT_BEFORE_BACKDATE).unwrap_or(now).into();
    params.not_after = not_after.into();
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    Ok(params)
}

fn ia5(field: &'static str, value: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    rcgen::string::Ia5String::try_from(value).map_err(|_| PkiError::InvalidField {
        field,
        value: value.to_owned(),
        reason: "only ascii characters are allowed",
    })
}

/// [`SERIAL_LEN`] random bytes, positive and without a leading zero byte
/// so the DER encoding has exactly that length.
fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut serial = vec![0u8; SERIAL_LEN];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| PkiError::Random)?;
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(serial)
}

pub(crate) fn pem_error(e: rustls_pki_types::pem::Error, what: &'static str) -> PkiError {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => PkiError::NoPemItem(what),
        E::MissingSectionEnd { .. } => PkiError::BadPem("a section has no end marker"),
        E::IllegalSectionStart { .. } => PkiError::BadPem("a section start line is malformed"),
        E::Base64Decode(_) => PkiError::BadPem("a section is not valid base64"),
        E::SectionTooLarge => PkiError::BadPem("a section is too large"),
        _ => PkiError::BadPem("cannot read pem"),
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> (18 - 6 * i)) & 0x3f).unwrap_or(0);
                b64.push(char::from(B64.get(idx).copied().unwrap_or(b'A')));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
