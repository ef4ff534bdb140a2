//! Development and test PKI for Portcullis.
//!
//! This crate makes certificate authorities, client and server
//! certificates and certificate revocation lists with `rcgen`, in memory
//! ([`Ca`], [`IssueRequest`], [`CertifiedKey`]) or as files in a directory
//! ([`init_dir`], [`issue_to_dir`]) for the `portcullis pki` commands.
//!
//! Every key is ECDSA P-256, every serial number is random. Leaf
//! certificates carry `basicConstraints CA:false`, key usage
//! `digitalSignature` and the extended key usage of their [`Usage`];
//! intermediate CAs are limited to path length 0; CAs carry key usage
//! `keyCertSign` and `cRLSign`.
//!
//! It does not verify certificates (that is `portcullis-authn`), does not
//! protect CA keys beyond file modes, and is not meant to run a production
//! CA: there is no issuance log, no OCSP and no key storage other than
//! PEM files.

mod ca;
mod error;
mod files;

pub use ca::{
    cert_serial, Ca, CertifiedKey, IssueRequest, Usage, CA_VALIDITY, DEFAULT_LEAF_VALIDITY,
    INTERMEDIATE_VALIDITY, NOT_BEFORE_BACKDATE, SERIAL_LEN,
};
pub use error::PkiError;
pub use files::{
    init_dir, intermediate_from_dir, issue_to_dir, InitReport, IssueReport, CA_BUNDLE_FILE,
    INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, MAX_NAME_LEN, ROOT_CERT_FILE, ROOT_KEY_FILE,
};
