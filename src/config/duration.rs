//! Durations in config as human strings ("30s", "1h", "15m").

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: {e} (examples: 30s, 15m, 1h)"
        ))
    })
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// A string where YAML's null (e.g. `url: ${UNSET_VAR}` after substitution) means empty.
pub fn nullable_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(Option::unwrap_or_default)
}

/// A list of durations (`[1h, 3h, 6h]`).
pub mod list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                humantime::parse_duration(text.trim()).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {text:?}: {e} (examples: 30s, 15m, 1h)"
                    ))
                })
            })
            .collect()
    }

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for d in list {
            seq.serialize_element(&humantime::format_duration(*d).to_string())?;
        }
        seq.end()
    }
}

/// An optional duration (absent or null = use the section's default).
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                humantime::parse_duration(text.trim()).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {text:?}: {e} (examples: 30s, 15m, 1h)"
                    ))
                })
            })
            .transpose()
    }

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}
