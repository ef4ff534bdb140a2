//! Client certificate (mTLS) authentication for Portcullis.
//!
//! This crate builds the rustls configurations of the gateway — the
//! listener's [`server_config`] with its [`ClientVerifier`], and the
//! [`upstream_client_config`] for https upstreams — and turns a verified
//! client chain into a [`CertIdentity`] with [`identity_from_chain`].
//!
//! Client certificates are verified by rustls' webpki verifier (chain to a
//! configured root, validity, CRLs, `clientAuth` EKU when an EKU is
//! present), then the SPIFFE X.509-SVID rules apply to any leaf with a URI
//! SAN. A failure of either fails the handshake;
//! [`classify_handshake_error`] turns the failure into a metric label.
//! [`pem`] loads certificates, keys and CRLs from files.
//!
//! It does not authorize (that is `portcullis-policy`), does not fetch
//! CRLs or speak OCSP, and does not talk to a SPIFFE Workload API: trust
//! anchors and CRLs come from files the operator provides.

mod classify;
mod config;
mod dn;
mod error;
mod identity;
pub mod pem;
mod provider;
mod tls;
mod verifier;

pub use classify::{classify_handshake_error, classify_rustls, HANDSHAKE_FAILURE_REASONS};
pub use config::{ClientAuthConfig, ClientAuthMode, ServerTls};
pub use error::AuthnError;
pub use identity::{chain_not_after, identity_from_chain, IdentityError, MAX_QUOTED_VALUE_LEN};
pub use portcullis_identity::CertIdentity;
pub use tls::{server_config, server_config_with_verifier, upstream_client_config, ALPN_PROTOCOLS};
pub use verifier::{client_verifier, ClientVerifier};
