//! The client certificate verifier: webpki path validation, then the
//! SPIFFE X.509-SVID rules.

use std::sync::Arc;

use portcullis_identity::TrustDomain;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::identity::{identity_from_chain, IdentityError};
use crate::{AuthnError, ClientAuthConfig, ClientAuthMode};

/// Verifies client certificates for a listener.
///
/// Chain validation, validity period, revocation and the `clientAuth`
/// extended key usage (required when the leaf has an EKU extension) are
/// rustls' `WebPkiClientVerifier`. After it succeeds, the leaf must also
/// yield a [`portcullis_identity::CertIdentity`] under the X.509-SVID
/// rules; a breach fails the handshake with a `certificate_unknown` alert
/// and a `CertificateError::Other` holding the [`IdentityError`].
///
/// INVARIANT: a certificate this verifier accepts yields `Ok` from
/// [`identity_from_chain`] with the same trust domains.
#[derive(Debug)]
pub struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domains: Vec<TrustDomain>,
}

/// Builds the verifier a listener with `config` uses (also what
/// [`crate::server_config`] installs).
pub fn client_verifier(config: &ClientAuthConfig) -> Result<Arc<ClientVerifier>, AuthnError> {
    if config.roots.is_empty() {
        return Err(AuthnError::NoClientRoots);
    }
    let roots = root_store(&config.roots)?;
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider::provider());
    if !config.crls.is_empty() {
        // Defaults kept: every certificate of the chain is checked and an
        // unknown status (no CRL of its issuer) fails. A stale CRL fails
        // too, as with OpenSSL: it may miss recent revocations.
        builder = builder
            .with_crls(config.crls.iter().cloned())
            .enforce_revocation_expiration();
    }
    if config.mode == ClientAuthMode::Optional {
        builder = builder.allow_unauthenticated();
    }
    let inner = builder
        .build()
        .map_err(|e| AuthnError::Verifier(e.to_string()))?;
    Ok(Arc::new(ClientVerifier {
        inner,
        trust_domains: config.spiffe_trust_domains.clone(),
    }))
}

pub(crate) fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore, AuthnError> {
    let mut store = RootCertStore::empty();
    for (index, root) in roots.iter().enumerate() {
        store
            .add(root.clone())
            .map_err(|e| AuthnError::BadTrustAnchor {
                index,
                reason: e.to_string(),
            })?;
    }
    Ok(store)
}

impl ClientVerifier {
    /// Verifies a connection's client chain (leaf first; empty for a
    /// client that presented none) again at `now`, as a handshake with
    /// this verifier would: for a connection accepted under other trust
    /// material (a reload changed the CA bundle, the CRLs or the
    /// `client_auth` mode). A refusal carries the reason code of
    /// [`crate::classify_rustls`] and the verifier's message.
    pub fn reverify(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), (&'static str, String)> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return if self.client_auth_mandatory() {
                Err((
                    "no_client_cert",
                    "the listener now requires a client certificate".to_owned(),
                ))
            } else {
                Ok(())
            };
        };
        self.verify_client_cert(leaf, intermediates, now)
            .map(|_| ())
            .map_err(|e| (crate::classify_rustls(&e), e.to_string()))
    }

    /// The identity error inside a rustls error made by this verifier.
    pub fn identity_error(err: &rustls::Error) -> Option<&IdentityError> {
        match err {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<IdentityError>()
            }
            _ => None,
        }
    }
}

fn identity_failure(e: IdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        identity_from_chain(std::slice::from_ref(end_entity), &self.trust_domains)
            .map_err(identity_failure)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
