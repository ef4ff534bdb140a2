//! The policy file as written: serde structs, no validation beyond types
//! and unknown fields. `compile` turns them into a [`crate::Policy`].

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) revision: Revision,
    #[serde(default)]
    pub(crate) roles: Option<UniqueMap<Option<RawRole>>>,
    #[serde(default)]
    pub(crate) bindings: Option<Vec<RawBinding>>,
    #[serde(default)]
    pub(crate) rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    #[serde(default)]
    pub(crate) inherits: Vec<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "documentation for readers of the file")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBinding {
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) spiffe_id: Option<String>,
    #[serde(default)]
    pub(crate) spiffe_id_prefix: Option<String>,
    #[serde(default)]
    pub(crate) cert_subject: Option<String>,
    #[serde(default)]
    pub(crate) cert_issuer: Option<String>,
    /// Token bindings: the issuer, then at most one of `subject`,
    /// `claim` (with `value`) or `scope`.
    #[serde(default)]
    pub(crate) issuer: Option<String>,
    #[serde(default)]
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) claim: Option<String>,
    #[serde(default)]
    pub(crate) value: Option<Scalar>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "documentation for readers of the file")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) id: String,
    pub(crate) effect: Effect,
    #[serde(default)]
    pub(crate) roles: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) route: Option<String>,
    #[serde(default)]
    pub(crate) routes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) methods: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) when: Option<RawWhen>,
    #[serde(default)]
    #[expect(dead_code, reason = "documentation for readers of the file")]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWhen {
    #[serde(default)]
    pub(crate) source_ip: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) time: Option<RawTime>,
    #[serde(default)]
    pub(crate) equal: Option<UniqueMap<String>>,
    #[serde(default)]
    pub(crate) claims: Option<UniqueMap<OneOrMany>>,
    #[serde(default)]
    pub(crate) mfa: Option<RawMfa>,
    #[serde(default)]
    pub(crate) authn: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) has_roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMfa {
    #[serde(default)]
    pub(crate) methods: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) acr: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) max_age: Option<String>,
}

/// A claim value as written: a string, boolean or number, compared as text
/// (`true`, `42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar(pub(crate) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, boolean or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(serde_json::Number::from_f64(v).map_or_else(
                    || v.to_string(),
                    |n| portcullis_identity::number_text(&n),
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// One scalar or a list of them.
#[derive(Debug)]
pub(crate) struct OneOrMany(pub(crate) Vec<Scalar>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(Scalar),
            Many(Vec<Scalar>),
        }
        match Either::deserialize(d) {
            Ok(Either::One(s)) => Ok(OneOrMany(vec![s])),
            Ok(Either::Many(v)) => Ok(OneOrMany(v)),
            Err(_) => Err(de::Error::custom(
                "expected a string, boolean or number, or a list of them",
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTime {
    #[serde(default)]
    pub(crate) days: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) tz: Option<String>,
}

/// The `revision:` value: a string or an integer, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revision(pub(crate) String);

impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Revision;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Revision, E> {
                Ok(Revision(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Revision, E> {
                Ok(Revision(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Revision, E> {
                Ok(Revision(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping that keeps file order and rejects duplicate keys (a plain
/// map would silently keep the last one).
#[derive(Debug)]
pub(crate) struct UniqueMap<V>(pub(crate) Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                let mut seen = HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    let value = map.next_value::<V>()?;
                    out.push((key, value));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}
