//! Helpers shared by the unit tests.

use std::net::IpAddr;

use jiff::Timestamp;
use portcullis_identity::{CertIdentity, Principal, SpiffeId, Thumbprint};

use crate::{Decision, Policy, Request};

pub(crate) fn cert(spiffe_id: Option<&str>, subject: &str, issuer: &str) -> Principal {
    Principal::from_cert(CertIdentity {
        spiffe_id: spiffe_id.map(|s| SpiffeId::parse(s).unwrap()),
        subject: subject.to_owned(),
        issuer: issuer.to_owned(),
        subject_attrs: Vec::new(),
        dns_sans: Vec::new(),
        email_sans: Vec::new(),
        thumbprint: Thumbprint([0; 32]),
    })
}

pub(crate) fn spiffe(id: &str) -> Principal {
    cert(Some(id), "", "")
}

/// A Friday, 10:00 UTC.
pub(crate) fn friday_10z() -> Timestamp {
    "2026-12-04T10:00:00Z".parse().unwrap()
}

pub(crate) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Builds requests against one policy with sensible defaults.
#[derive(Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) route: &'a str,
    pub(crate) method: &'a str,
    pub(crate) source_ip: IpAddr,
    pub(crate) now: Timestamp,
}

impl<'a> Ask<'a> {
    pub(crate) fn new(policy: &'a Policy) -> Self {
        Self {
            policy,
            route: "api",
            method: "GET",
            source_ip: ip("10.1.2.3"),
            now: friday_10z(),
        }
    }

    pub(crate) fn route(mut self, route: &'a str) -> Self {
        self.route = route;
        self
    }

    pub(crate) fn method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }

    pub(crate) fn source(mut self, s: &str) -> Self {
        self.source_ip = ip(s);
        self
    }

    pub(crate) fn at(mut self, s: &str) -> Self {
        self.now = ts(s);
        self
    }

    pub(crate) fn path(&self, principal: &Principal, path: &str) -> Decision {
        self.policy.evaluate(&Request {
            principal,
            route: self.route,
            method: self.method,
            path,
            source_ip: self.source_ip,
            now: self.now,
        })
    }
}

pub(crate) fn load(src: &str) -> Policy {
    match Policy::from_yaml(src) {
        Ok(p) => p,
        Err(e) => panic!("policy should load: {e}"),
    }
}

pub(crate) fn load_err(src: &str) -> String {
    match Policy::from_yaml(src) {
        Ok(_) => panic!("policy should not load:\n{src}"),
        Err(e) => e.to_string(),
    }
}

/// A principal with only a bearer token whose claims are `claims` (a JSON
/// object with `iss`).
pub(crate) fn token(claims: serde_json::Value) -> Principal {
    let serde_json::Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    Principal {
        cert: None,
        token: Some(std::sync::Arc::new(portcullis_identity::TokenIdentity {
            issuer: claims["iss"].as_str().unwrap().to_owned(),
            subject: claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_owned),
            claims,
            bound_to: None,
        })),
    }
}
