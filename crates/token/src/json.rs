//! Strict JSON for token headers, payloads and JWKS.
//!
//! `serde_json` keeps the last of two members with the same name; a
//! signature then covers a value other parsers read differently. This
//! parser refuses duplicate member names at every nesting level (compared
//! after unescaping) and bounds the nesting depth.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Deepest nesting of objects and arrays accepted in a header, payload or
/// JWKS: real claims nest a few levels; deeper input is an attack on the
/// parser, not a token.
pub const MAX_JSON_DEPTH: usize = 16;

/// Why strict parsing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonFault {
    /// Not JSON (syntax, invalid UTF-8, trailing data, number out of range).
    Syntax,
    /// The same member name twice in one object.
    Duplicate,
    /// More than [`MAX_JSON_DEPTH`] levels of nesting.
    TooDeep,
    /// Valid JSON, but the top level is not an object.
    NotObject,
}

/// Parses `bytes` as one JSON object.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonFault> {
    match parse_value(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(JsonFault::NotObject),
    }
}

/// Parses `bytes` as one JSON value.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, JsonFault> {
    let fault = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        fault: &fault,
    }
    .deserialize(&mut de)
    .map_err(|_| fault.get().unwrap_or(JsonFault::Syntax))?;
    de.end().map_err(|_| JsonFault::Syntax)?;
    Ok(value)
}

struct Strict<'a> {
    depth: usize,
    fault: &'a Cell<Option<JsonFault>>,
}

impl Strict<'_> {
    fn enter<E: serde::de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth.saturating_add(1);
        if depth > MAX_JSON_DEPTH {
            self.fault.set(Some(JsonFault::TooDeep));
            return Err(E::custom("json nesting too deep"));
        }
        Ok(depth)
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict {
            depth,
            fault: self.fault,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Entry::Vacant(slot) = map.entry(key) else {
                self.fault.set(Some(JsonFault::Duplicate));
                return Err(A::Error::custom("duplicate member"));
            };
            slot.insert(access.next_value_seed(Strict {
                depth,
                fault: self.fault,
            })?);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests;
