//! The session record.

use std::fmt;

use portcullis_identity::Thumbprint;
use serde_json::{Map, Value};

use crate::{SealedBlob, SessionKey};

/// One browser session, as the authoritative store holds it. Times are
/// Unix seconds.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// SHA-256 of the cookie's session id.
    #[serde(with = "key_hex")]
    pub key: SessionKey,
    /// The OpenID provider's `iss` and the user's `sub`.
    pub issuer: String,
    pub subject: String,
    /// The verified ID token claims (and what the gateway adds), judged by
    /// the policy like a token's claims.
    pub claims: Map<String, Value>,
    /// `amr` and `acr` of the last authentication.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// When the user last authenticated at the provider (`auth_time`).
    pub auth_time: i64,
    /// When a second factor was last completed (`None`: never).
    pub mfa_time: Option<i64>,
    /// The client certificate the session was created over, if any: the
    /// session is refused over any other certificate.
    pub bound_thumbprint: Option<[u8; 32]>,
    /// The provider's refresh token, sealed.
    pub refresh_token: Option<SealedBlob>,
    /// When the provider's access token expires (refresh before).
    pub provider_token_expires_at: Option<i64>,
    pub created_at: i64,
    pub last_seen: i64,
    /// Absolute end of the session.
    pub expires_at: i64,
    /// Idle lifetime in seconds: the session ends `idle_secs` after
    /// `last_seen`.
    pub idle_secs: i64,
    pub revoked: bool,
    /// Bumped by every change; updates are compare-and-set on it.
    pub version: u64,
}

impl Session {
    /// Whether the session may be used at `now`: not revoked, not past its
    /// absolute or idle end.
    pub fn is_live(&self, now: i64) -> bool {
        !self.revoked
            && now < self.expires_at
            && now < self.last_seen.saturating_add(self.idle_secs)
    }

    /// When the session's provider tokens are due for a refresh, if it is
    /// on the refresh schedule at all: not revoked, with a refresh token
    /// and a known token expiry. The stores keep an index on it.
    pub fn refresh_due(&self) -> Option<i64> {
        if self.revoked || self.refresh_token.is_none() {
            return None;
        }
        self.provider_token_expires_at
    }

    pub fn bound_thumbprint(&self) -> Option<Thumbprint> {
        self.bound_thumbprint.map(Thumbprint)
    }

    /// What listings show: no claims, no tokens.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            key: self.key.to_hex(),
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            created_at: self.created_at,
            last_seen: self.last_seen,
            expires_at: self.expires_at,
            mfa_time: self.mfa_time,
            bound_thumbprint: self.bound_thumbprint().map(|t| t.to_hex()),
            revoked: self.revoked,
            version: self.version,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("subject", &self.subject)
            .field("revoked", &self.revoked)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A session as listed by the admin API and `portcullis session list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionSummary {
    /// The session key (hex), as accepted by `session revoke --session`.
    pub key: String,
    pub issuer: String,
    pub subject: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    pub mfa_time: Option<i64>,
    pub bound_thumbprint: Option<String>,
    pub revoked: bool,
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: i64) -> Session {
        Session {
            key: SessionKey([1; 32]),
            issuer: "https://idp".into(),
            subject: "bob".into(),
            claims: Map::new(),
            amr: vec![],
            acr: None,
            auth_time: now,
            mfa_time: None,
            bound_thumbprint: None,
            refresh_token: None,
            provider_token_expires_at: None,
            created_at: now,
            last_seen: now,
            expires_at: now + 3600,
            idle_secs: 600,
            revoked: false,
            version: 1,
        }
    }

    #[test]
    fn live_until_idle_or_absolute_end_or_revocation() {
        let s = session(1000);
        assert!(s.is_live(1000));
        assert!(s.is_live(1599));
        assert!(!s.is_live(1600), "idle for the whole idle lifetime");
        let mut active = s.clone();
        active.last_seen = 4500;
        assert!(active.is_live(4599));
        assert!(!active.is_live(4600), "absolute end, however active");
        let mut revoked = s.clone();
        revoked.revoked = true;
        assert!(!revoked.is_live(1000));
    }

    #[test]
    fn debug_and_summary_show_no_claims_or_tokens() {
        let mut s = session(0);
        s.claims
            .insert("email".into(), Value::String("bob@example.com".into()));
        assert!(!format!("{s:?}").contains("bob@example.com"));
        let json = serde_json::to_string(&s.summary()).unwrap_or_default();
        assert!(!json.contains("bob@example.com"));
        assert!(json.contains(&s.key.to_hex()));
    }
}

mod key_hex {
    use crate::SessionKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(k: &SessionKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&k.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SessionKey, D::Error> {
        let s = String::deserialize(d)?;
        SessionKey::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad session key"))
    }
}
