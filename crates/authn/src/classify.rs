//! Reason codes for failed TLS handshakes, for metrics labels and audit
//! records.

use std::io;

use rustls::{CertificateError, PeerIncompatible};

use crate::ClientVerifier;

/// Every code [`classify_handshake_error`] returns, so a metrics registry
/// can create all label values up front.
pub const HANDSHAKE_FAILURE_REASONS: &[&str] = &[
    "no_client_cert",
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "revoked",
    "revocation_unknown",
    "crl_expired",
    "bad_crl",
    "bad_signature",
    "bad_eku",
    "bad_svid",
    "bad_certificate",
    "unsupported_version",
    "incompatible",
    "no_alpn",
    "peer_alert",
    "protocol_error",
    "eof",
    "connection_reset",
    "timeout",
    "other",
];

/// Maps the error of a failed server-side handshake (as returned by
/// `tokio_rustls::TlsAcceptor::accept`) to one of
/// [`HANDSHAKE_FAILURE_REASONS`].
pub fn classify_handshake_error(err: &io::Error) -> &'static str {
    if let Some(e) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(e);
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => "eof",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "connection_reset",
        io::ErrorKind::TimedOut => "timeout",
        _ => "other",
    }
}

/// The reason code of a rustls error.
pub fn classify_rustls(err: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match err {
        E::NoCertificatesPresented => "no_client_cert",
        E::InvalidCertificate(c) => classify_certificate(err, c),
        E::InvalidCertRevocationList(_) => "bad_crl",
        E::PeerIncompatible(
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::ServerDoesNotSupportTls12Or13,
        ) => "unsupported_version",
        E::PeerIncompatible(_) => "incompatible",
        E::NoApplicationProtocol => "no_alpn",
        E::AlertReceived(_) => "peer_alert",
        E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::InvalidMessage(_)
        | E::PeerMisbehaved(_)
        | E::DecryptError
        | E::PeerSentOversizedRecord => "protocol_error",
        _ => "other",
    }
}

fn classify_certificate(err: &rustls::Error, c: &CertificateError) -> &'static str {
    use CertificateError as C;
    #[expect(
        deprecated,
        reason = "older rustls releases still emit the deprecated variant"
    )]
    match c {
        C::UnknownIssuer => "unknown_ca",
        C::Expired | C::ExpiredContext { .. } => "expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
        C::Revoked => "revoked",
        C::UnknownRevocationStatus => "revocation_unknown",
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => "crl_expired",
        C::BadSignature
        | C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => "bad_signature",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "bad_eku",
        C::Other(_) => match ClientVerifier::identity_error(err) {
            Some(e) if e.is_svid_violation() => "bad_svid",
            _ => "bad_certificate",
        },
        _ => "bad_certificate",
    }
}

#[cfg(test)]
mod tests;
