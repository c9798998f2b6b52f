//! Scenario values that are more than a TOML scalar: the cap (a number or "unlimited"), the
//! quantity (a number or a range), and the defaults of the optional keys.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many units the sale may sell in total.
///
/// Serialized as a bare number or the string `"unlimited"`, matching how people write it in the
/// file rather than exposing an enum tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Limited(u64),
    Unlimited,
}

impl Cap {
    /// The cap in the form the checker and the ledger use (`None` = unlimited).
    pub fn as_option(self) -> Option<u64> {
        match self {
            Cap::Limited(n) => Some(n),
            Cap::Unlimited => None,
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Limited(n) => write!(f, "{n}"),
            Cap::Unlimited => f.write_str("unlimited"),
        }
    }
}

const UNLIMITED: &str = "unlimited";

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cap::Limited(n) => serializer.serialize_u64(*n),
            Cap::Unlimited => serializer.serialize_str(UNLIMITED),
        }
    }
}

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CapVisitor;

        impl Visitor<'_> for CapVisitor {
            type Value = Cap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of units >= 0 or the string \"unlimited\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cap, E> {
                Ok(Cap::Limited(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cap, E> {
                u64::try_from(v)
                    .map(Cap::Limited)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cap, E> {
                if v == UNLIMITED {
                    Ok(Cap::Unlimited)
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(CapVisitor)
    }
}

/// Units each buyer requests: a fixed number, drawn uniformly from `min..=max` with the run's
/// seeded generator, or `{ sequence = [1, 1, 3] }`: buyer `i` asks for `sequence[i % len]`, which
/// with a closed arrival of concurrency 1 puts a chosen quantity on a chosen remaining count
/// (`flashsale verify`'s boundary check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum QuantitySpec {
    Fixed(u32),
    Range { min: u32, max: u32 },
    Sequence { sequence: Vec<u32> },
}

impl QuantitySpec {
    /// The largest quantity a buyer can ask for, e.g. to size a sale or check a per-buyer limit.
    pub fn max(&self) -> u32 {
        match self {
            QuantitySpec::Fixed(n) => *n,
            QuantitySpec::Range { max, .. } => *max,
            QuantitySpec::Sequence { sequence } => sequence.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The `{ min, max }` and `{ sequence }` forms of a quantity, on their own so that unknown keys
/// inside them are rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityTable {
    min: Option<u32>,
    max: Option<u32>,
    sequence: Option<Vec<u32>>,
}

impl<'de> Deserialize<'de> for QuantitySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]`: untagged enums only ever say "did not
        // match any variant", which tells a person nothing about what to write instead.
        struct QuantityVisitor;

        impl<'de> Visitor<'de> for QuantityVisitor {
            type Value = QuantitySpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a whole number of units >= 1, a table { min = 1, max = 3 } or a table \
                     { sequence = [1, 1, 3] }",
                )
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QuantitySpec, E> {
                u32::try_from(v)
                    .map(QuantitySpec::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<QuantitySpec, E> {
                u32::try_from(v)
                    .map(QuantitySpec::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QuantitySpec, A::Error> {
                let table = QuantityTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match table {
                    QuantityTable {
                        min: Some(min),
                        max: Some(max),
                        sequence: None,
                    } => Ok(QuantitySpec::Range { min, max }),
                    QuantityTable {
                        min: None,
                        max: None,
                        sequence: Some(sequence),
                    } => Ok(QuantitySpec::Sequence { sequence }),
                    _ => Err(de::Error::custom(
                        "a quantity table is either { min = 1, max = 3 } (both keys) or \
                         { sequence = [1, 1, 3] } (alone)",
                    )),
                }
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

pub(super) fn default_window() -> Duration {
    Duration::from_secs(600)
}

pub(super) fn default_connections() -> u32 {
    256
}

pub(super) fn default_open_after() -> Duration {
    Duration::from_millis(200)
}

pub(super) fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

pub(super) fn default_retry_backoff() -> Duration {
    Duration::from_millis(50)
}
