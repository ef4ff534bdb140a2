//! Request descriptions in JSON or YAML, for `portcullis policy eval` and
//! policy test files. Parsing only; no file access.
//!
//! ```json
//! {"principal": {"spiffe_id": "spiffe://example.org/ns/prod/sa/web",
//!                "subject": "CN=web", "issuer": "CN=Dev Intermediate CA",
//!                "subject_attrs": {"CN": "web"}},
//!  "route": "api", "method": "GET", "path": "/api/tenants/acme/x",
//!  "source_ip": "10.1.2.3", "time": "2026-12-04T10:00:00Z"}
//! ```
//!
//! `principal` null or absent means no client certificate. `token` gives
//! the verified claims of a bearer token (`iss` is required):
//!
//! ```json
//! {"token": {"claims": {"iss": "https://idp.example", "sub": "alice",
//!                       "groups": ["admins"], "amr": ["pwd", "otp"],
//!                       "auth_time": 1796378400},
//!            "bound": false},
//!  "route": "api", "method": "GET", "path": "/api/x",
//!  "source_ip": "10.1.2.3", "time": "2026-12-04T10:00:00Z"}
//! ```
//!
//! `bound: true` says the token is certificate-bound to the request's
//! client certificate (so it needs a `principal`). `time` may be left out
//! only when the caller supplies a default.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use std::sync::Arc;

use portcullis_identity::{CertIdentity, Principal, SpiffeId, Thumbprint, TokenIdentity};

use crate::error::{PolicyError, PolicyErrorKind};
use crate::policy::Request;

/// Largest request description accepted, in bytes: a request with a
/// certificate identity is well under 16 KiB.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// A request as written in JSON or YAML.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    #[serde(default)]
    pub principal: Option<PrincipalInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenInput>,
    pub route: String,
    pub method: String,
    pub path: String,
    pub source_ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

/// A certificate identity as written; see [`CertIdentity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub issuer: String,
    /// Subject attributes by short name, e.g. `{"CN": "web", "O": "Example"}`.
    #[serde(default)]
    pub subject_attrs: BTreeMap<String, String>,
    #[serde(default)]
    pub dns_sans: Vec<String>,
    #[serde(default)]
    pub email_sans: Vec<String>,
    /// SHA-256 of the certificate as 64 hex digits; zeros when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

/// A verified token as written: its claims and whether it is bound to the
/// request's client certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub claims: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub bound: bool,
}

/// The owned parts of a [`Request`], built from a [`RequestInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRequest {
    pub principal: Principal,
    pub route: String,
    pub method: String,
    pub path: String,
    pub source_ip: IpAddr,
    pub now: Timestamp,
}

impl OwnedRequest {
    /// Borrows the parts as a [`Request`] for [`crate::Policy::evaluate`].
    pub fn as_request(&self) -> Request<'_> {
        Request {
            principal: &self.principal,
            route: &self.route,
            method: &self.method,
            path: &self.path,
            source_ip: self.source_ip,
            now: self.now,
        }
    }
}

/// The request fields other than the principal; see [`RequestInput::to_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub route: String,
    pub method: String,
    pub path: String,
    pub source_ip: IpAddr,
    pub now: Timestamp,
}

impl RequestFields {
    /// Borrows the fields and `principal` as a [`Request`].
    pub fn request<'a>(&'a self, principal: &'a Principal) -> Request<'a> {
        Request {
            principal,
            route: &self.route,
            method: &self.method,
            path: &self.path,
            source_ip: self.source_ip,
            now: self.now,
        }
    }
}

impl RequestInput {
    /// Parses JSON; errors name the key path.
    pub fn from_json(src: &str) -> Result<Self, PolicyError> {
        check_size(src)?;
        let mut de = serde_json::Deserializer::from_str(src);
        let v = serde_path_to_error::deserialize(&mut de).map_err(PolicyError::from_serde)?;
        de.end()
            .map_err(|e| PolicyError::new("", PolicyErrorKind::Syntax(e.to_string())))?;
        Ok(v)
    }

    /// Parses YAML; errors name the key path.
    pub fn from_yaml(src: &str) -> Result<Self, PolicyError> {
        check_size(src)?;
        crate::compile::parse_yaml(src)
    }

    /// Builds the request, using `default_now` when the input has no
    /// `time`. Errors name the key path (`principal.spiffe_id`, …).
    pub fn to_request(&self, default_now: Option<Timestamp>) -> Result<OwnedRequest, PolicyError> {
        let now = self.time.or(default_now).ok_or_else(|| {
            PolicyError::new(
                "time",
                PolicyErrorKind::Invalid("missing; give the request a `time`"),
            )
        })?;
        let mut principal = match &self.principal {
            None => Principal::anonymous(),
            Some(p) => Principal::from_cert(p.to_cert()?),
        };
        if let Some(t) = &self.token {
            let issuer = match t.claims.get("iss") {
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(PolicyError::new(
                        "token.claims.iss",
                        PolicyErrorKind::Invalid(
                            "missing; a token needs its issuer (a non-empty string)",
                        ),
                    ))
                }
            };
            let subject = match t.claims.get("sub") {
                None => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(PolicyError::new(
                        "token.claims.sub",
                        PolicyErrorKind::Invalid("must be a string"),
                    ))
                }
            };
            let bound_to = if t.bound {
                match &principal.cert {
                    Some(c) => Some(c.thumbprint),
                    None => {
                        return Err(PolicyError::new(
                            "token.bound",
                            PolicyErrorKind::Invalid(
                                "a bound token needs the client certificate it is bound to (`principal`)",
                            ),
                        ))
                    }
                }
            } else {
                None
            };
            principal.token = Some(Arc::new(TokenIdentity {
                issuer,
                subject,
                claims: t.claims.clone(),
                bound_to,
            }));
        }
        // The gateway judges normalised paths only; a path spelled
        // otherwise here would show a decision no request can get.
        // (Dot segments are left to the engine, which denies them as
        // `invalid_path` itself.)
        for seg in self.path.split('/').skip(1) {
            if seg == "." || seg == ".." {
                continue;
            }
            match crate::pattern::normal_form(seg) {
                Ok(normal) if normal == seg => {}
                Ok(normal) => {
                    return Err(PolicyError::new(
                        "path",
                        PolicyErrorKind::InvalidPattern(format!(
                            "`{}` is not a path as the gateway judges it: it spells segment `{}` as `{normal}` (docs/path-normalisation.md)",
                            self.path.escape_default(),
                            seg.escape_default()
                        )),
                    ))
                }
                Err(why) => {
                    return Err(PolicyError::new(
                        "path",
                        PolicyErrorKind::InvalidPattern(format!(
                            "`{}` is never judged: the gateway refuses it ({why})",
                            self.path.escape_default()
                        )),
                    ))
                }
            }
        }
        Ok(OwnedRequest {
            principal,
            route: self.route.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            source_ip: self.source_ip,
            now,
        })
    }

    /// The principal and the other request fields, for a caller with a
    /// default time (the CLI passes the current time).
    pub fn to_parts(
        &self,
        default_now: Timestamp,
    ) -> Result<(Principal, RequestFields), PolicyError> {
        let req = self.to_request(Some(default_now))?;
        let fields = RequestFields {
            route: req.route,
            method: req.method,
            path: req.path,
            source_ip: req.source_ip,
            now: req.now,
        };
        Ok((req.principal, fields))
    }
}

impl PrincipalInput {
    fn to_cert(&self) -> Result<CertIdentity, PolicyError> {
        let spiffe_id = match &self.spiffe_id {
            None => None,
            Some(s) => Some(SpiffeId::parse(s).map_err(|reason| {
                PolicyError::new(
                    "principal.spiffe_id",
                    PolicyErrorKind::InvalidSpiffeId {
                        value: s.escape_default().to_string(),
                        reason,
                    },
                )
            })?),
        };
        let thumbprint = match &self.thumbprint {
            None => Thumbprint([0; 32]),
            Some(hex) => Thumbprint::from_hex(hex).ok_or_else(|| {
                PolicyError::new(
                    "principal.thumbprint",
                    PolicyErrorKind::Invalid("expected 64 hex digits"),
                )
            })?,
        };
        Ok(CertIdentity {
            spiffe_id,
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            subject_attrs: self
                .subject_attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dns_sans: self.dns_sans.clone(),
            email_sans: self.email_sans.clone(),
            thumbprint,
        })
    }
}

fn check_size(src: &str) -> Result<(), PolicyError> {
    if src.len() > MAX_INPUT_BYTES {
        return Err(PolicyError::new(
            "",
            PolicyErrorKind::TooLarge {
                len: src.len(),
                max: MAX_INPUT_BYTES,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
