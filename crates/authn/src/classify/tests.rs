use std::sync::Arc;

use rustls::{AlertDescription, CertRevocationListError, InvalidMessage, OtherError};

use super::*;
use crate::IdentityError;

fn io(e: rustls::Error) -> io::Error {
    // What tokio-rustls returns for a failed handshake.
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn cert(e: CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(e)
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    cert(CertificateError::Other(OtherError(Arc::new(e))))
}

#[test]
fn rustls_errors_map_to_their_codes() {
    let t = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1));
    let cases: Vec<(rustls::Error, &str)> = vec![
        (rustls::Error::NoCertificatesPresented, "no_client_cert"),
        (cert(CertificateError::UnknownIssuer), "unknown_ca"),
        (cert(CertificateError::Expired), "expired"),
        (
            cert(CertificateError::ExpiredContext {
                time: t,
                not_after: t,
            }),
            "expired",
        ),
        (cert(CertificateError::NotValidYet), "not_yet_valid"),
        (
            cert(CertificateError::NotValidYetContext {
                time: t,
                not_before: t,
            }),
            "not_yet_valid",
        ),
        (cert(CertificateError::Revoked), "revoked"),
        (
            cert(CertificateError::UnknownRevocationStatus),
            "revocation_unknown",
        ),
        (cert(CertificateError::ExpiredRevocationList), "crl_expired"),
        (cert(CertificateError::BadSignature), "bad_signature"),
        (cert(CertificateError::InvalidPurpose), "bad_eku"),
        (cert(CertificateError::BadEncoding), "bad_certificate"),
        (
            cert(CertificateError::UnhandledCriticalExtension),
            "bad_certificate",
        ),
        (other(IdentityError::CaLeaf), "bad_svid"),
        (other(IdentityError::UriSanCount { count: 2 }), "bad_svid"),
        (other(IdentityError::Malformed("x")), "bad_certificate"),
        (
            other(std::io::Error::other("webpki says no")),
            "bad_certificate",
        ),
        (
            rustls::Error::InvalidCertRevocationList(CertRevocationListError::BadSignature),
            "bad_crl",
        ),
        (
            rustls::Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
            "unsupported_version",
        ),
        (
            rustls::Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            "incompatible",
        ),
        (rustls::Error::NoApplicationProtocol, "no_alpn"),
        (
            rustls::Error::AlertReceived(AlertDescription::BadCertificate),
            "peer_alert",
        ),
        (
            rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType),
            "protocol_error",
        ),
        (rustls::Error::DecryptError, "protocol_error"),
        (rustls::Error::General("x".into()), "other"),
    ];
    for (err, code) in cases {
        let text = format!("{err:?}");
        assert_eq!(classify_handshake_error(&io(err)), code, "{text}");
        assert!(HANDSHAKE_FAILURE_REASONS.contains(&code), "{code}");
    }
}

#[test]
fn io_errors_without_rustls_error_map_by_kind() {
    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
    assert_eq!(classify_handshake_error(&eof), "eof");
    let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    assert_eq!(classify_handshake_error(&reset), "connection_reset");
    let timeout = io::Error::from(io::ErrorKind::TimedOut);
    assert_eq!(classify_handshake_error(&timeout), "timeout");
    let odd = io::Error::new(io::ErrorKind::InvalidData, "not a rustls error");
    assert_eq!(classify_handshake_error(&odd), "other");
}

#[test]
fn reasons_are_unique_snake_case() {
    let set: std::collections::BTreeSet<_> = HANDSHAKE_FAILURE_REASONS.iter().collect();
    assert_eq!(set.len(), HANDSHAKE_FAILURE_REASONS.len());
    for r in HANDSHAKE_FAILURE_REASONS {
        assert!(
            r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{r}"
        );
    }
}
