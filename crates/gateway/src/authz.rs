//! The authorization step. A [`Permit`] proves that the policy allowed a
//! request; the forwarding code requires one, and this module is the only
//! place that can create it.

use std::net::IpAddr;

use portcullis_identity::Principal;
use portcullis_policy::{Decision, Policy, Request};

use crate::router::RouteId;

/// Proof that the policy allowed this request on this route.
#[derive(Debug)]
pub(crate) struct Permit {
    route: RouteId,
    decision: Decision,
}

impl Permit {
    pub(crate) fn route(&self) -> RouteId {
        self.route
    }

    pub(crate) fn decision(&self) -> &Decision {
        &self.decision
    }
}

pub(crate) struct AuthzInput<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) route: RouteId,
    pub(crate) route_name: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) source_ip: IpAddr,
    pub(crate) now: jiff::Timestamp,
}

/// Evaluates the policy; anything but an explicit allow is an `Err` with
/// the decision that explains it.
pub(crate) fn authorize(policy: &Policy, input: &AuthzInput<'_>) -> Result<Permit, Box<Decision>> {
    let decision = policy.evaluate(&Request {
        principal: input.principal,
        route: input.route_name,
        method: input.method,
        path: input.path,
        source_ip: input.source_ip,
        now: input.now,
    });
    if decision.is_allowed() {
        Ok(Permit {
            route: input.route,
            decision,
        })
    } else {
        Err(Box::new(decision))
    }
}
