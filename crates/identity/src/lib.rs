//! Identity types shared by every Portcullis crate.
//!
//! This crate holds plain data: a strictly parsed [`SpiffeId`], the
//! [`CertIdentity`] extracted from a verified client certificate and the
//! [`Principal`] a request is made by, and the [`TokenIdentity`] of a
//! verified bearer token. It performs no I/O and no
//! cryptography; a [`CertIdentity`] is only *built* by the verifier in
//! `portcullis-authn`, after the chain was verified.

mod dn;
mod principal;
mod spiffe;
mod token;

pub use dn::{check_rfc4514, DN_SHORT_NAMES};
pub use principal::{AttributeRef, CertIdentity, Principal, Thumbprint};
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain, MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN};
pub use token::{number_text, ClaimPath, TokenIdentity, MAX_CLAIM_PATH_DEPTH, MAX_CLAIM_PATH_LEN};
