//! The Portcullis policy engine: a pure function from a [`Request`] to a
//! [`Decision`].
//!
//! A policy file (YAML, see `docs/policy.md`) declares roles with
//! inheritance, bindings from certificate identities to roles, and allow and
//! deny rules over routes, methods and path patterns with optional
//! conditions (source address, time window, path parameter equal to a
//! principal attribute). [`Policy::from_yaml`] validates everything at load
//! and compiles the rules into an index, so a decision touches only the rules
//! for the request's route, method, path and the principal's roles.
//!
//! What this crate does not do: it performs no I/O (callers read files), no
//! async work, reads no clock (the request carries the time) and keeps no
//! global state. It does not authenticate: the [`Principal`] it is given is
//! trusted to come from a verifier. It does not normalise request paths: the
//! gateway must hand over a normalised, percent-decoded path; anything else
//! is denied.
//!
//! The [`input`] and [`testing`] modules parse request descriptions and
//! policy test files from strings for the `portcullis policy` commands.
//!
//! [`Principal`]: portcullis_identity::Principal

mod compile;
mod condition;
mod decision;
mod error;
mod hash;
mod index;
mod name;
mod pattern;
mod policy;
mod raw;
mod summary;
mod yaml_depth;

pub mod input;
pub mod testing;

pub use decision::{Decision, FailedCondition, Reason};
pub use error::{PolicyError, PolicyErrorKind};
pub use policy::{Policy, Request};
pub use summary::{RoleSummary, RuleSummary, Summary};
pub use yaml_depth::{too_deep_flow_nesting, TooDeep, MAX_FLOW_NESTING};

/// Largest policy file accepted, in bytes: room for [`MAX_RULES`] rules of
/// about 300 bytes each; bounds parse time and memory.
pub const MAX_POLICY_BYTES: usize = 32 * 1024 * 1024;

/// Most rules in one policy: far beyond hand-written policies; loads in
/// under two seconds.
pub const MAX_RULES: usize = 100_000;

/// Most roles in one policy: inheritance closures are precomputed, which
/// costs up to roles² entries.
pub const MAX_ROLES: usize = 1_000;

/// Most bindings in one policy: one per workload or team is far below this.
pub const MAX_BINDINGS: usize = 100_000;

/// Most segments in one path pattern: deeper than any real API; bounds the
/// index depth and so the matcher's recursion.
pub const MAX_PATTERN_SEGMENTS: usize = 32;

/// Longest name (role, rule id, route, revision, method, path parameter),
/// in bytes: names show up in logs and audit records.
pub const MAX_NAME_LEN: usize = 256;

/// Most networks in one `source_ip` condition: each is tested in turn on
/// every evaluation of the rule.
pub const MAX_CIDRS_PER_RULE: usize = 1_024;

// INVARIANT: rule and role indices are stored as u32.
const _: () = assert!(MAX_RULES <= u32::MAX as usize);
const _: () = assert!(MAX_ROLES <= u32::MAX as usize);

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;
