//! Strict JSON for manifests, trust roots and rollback state.
//!
//! `serde_json` keeps the last of two members with the same name, so a
//! signature would cover a value that other readers see differently. Every
//! document is first walked by [`check`], which refuses duplicate member
//! names (compared after unescaping) and deep nesting; only then is it
//! deserialized into its typed form (with `deny_unknown_fields`).

use std::collections::HashSet;
use std::fmt;

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor,
};

use crate::error::BundleError;

/// Deepest nesting accepted: our documents nest three levels; more is an
/// attack on the parser, not a bundle.
pub const MAX_JSON_DEPTH: usize = 8;

/// Why the strict walk failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Syntax,
    Duplicate,
    TooDeep,
}

/// Walks `bytes` as one JSON value, refusing duplicates and deep nesting.
pub(crate) fn check(bytes: &[u8]) -> Result<(), Fault> {
    let mut fault = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Walk {
        depth: 0,
        fault: &mut fault,
    }
    .deserialize(&mut de)
    .map_err(|_| fault.unwrap_or(Fault::Syntax))?;
    de.end().map_err(|_| Fault::Syntax)
}

/// Parses `bytes` strictly into `T`; `document` names it in errors, `wrap`
/// turns other faults into the document's error.
pub(crate) fn parse<T: DeserializeOwned>(
    bytes: &[u8],
    document: &'static str,
    wrap: impl Fn(String) -> BundleError,
) -> Result<T, BundleError> {
    match check(bytes) {
        Ok(()) => {}
        Err(Fault::Duplicate) => return Err(BundleError::DuplicateMember(document)),
        Err(Fault::TooDeep) => return Err(wrap("json nests too deep".to_owned())),
        // Let serde_json describe the syntax error, with its position.
        Err(Fault::Syntax) => {}
    }
    serde_json::from_slice(bytes).map_err(|e| wrap(e.to_string()))
}

struct Walk<'a> {
    depth: usize,
    fault: &'a mut Option<Fault>,
}

impl Walk<'_> {
    fn enter<E: serde::de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth.saturating_add(1);
        if depth > MAX_JSON_DEPTH {
            *self.fault = Some(Fault::TooDeep);
            return Err(E::custom("json nests too deep"));
        }
        Ok(depth)
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        while seq
            .next_element_seed(Walk {
                depth,
                fault: &mut *self.fault,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut access: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        let mut seen = HashSet::new();
        while let Some(key) = access.next_key::<String>()? {
            if !seen.insert(key) {
                *self.fault = Some(Fault::Duplicate);
                return Err(A::Error::custom("duplicate member"));
            }
            access.next_value_seed(Walk {
                depth,
                fault: &mut *self.fault,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
