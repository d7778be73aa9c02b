//! How the theory's numbers look in JSON.
//!
//! The theory module is std only, so its types get their serde form here: a probability is
//! `{"value": f64, "log10": f64 | null}`, where the value may underflow to 0 while log10 stays
//! exact, and log10 is null only for an exact zero. The same shape carries a non-negative quantity
//! such as an expected count ([`LogNumber`]). A pattern's [`Metadata`] is its JSON object.

use crate::engine::{Metadata, Name, Pattern};
use crate::theory::{LogNumber, Probability};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

impl Serialize for Probability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_number().serialize(serializer)
    }
}

impl Serialize for LogNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Probability", 2)?;
        fields.serialize_field("value", &self.value())?;
        fields.serialize_field("log10", &self.log10())?;
        fields.end()
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A name is read back only if it keeps the naming rule (a change log entry, an export line).
impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        use serde::de::Error;
        let raw = String::deserialize(deserializer)?;
        Name::parse(&raw).map_err(|error| D::Error::custom(format!("the name {raw:?}: {error}")))
    }
}

/// A pattern is its sorted list of active cells.
impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells().serialize(serializer)
    }
}

/// Metadata is answered as the JSON object it is, not as a string holding it. Its text was
/// produced by serde_json from a parsed object, so reading it back cannot fail in practice.
impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(self.as_str()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::LN_10;

    #[test]
    fn a_probability_serialises_as_value_and_log10() {
        let tiny = Probability::from_ln(-1000.0 * LN_10);
        let json = serde_json::to_value(tiny).unwrap();
        assert_eq!(json["value"], 0.0);
        assert!((json["log10"].as_f64().unwrap() + 1000.0).abs() < 1e-9);
        let zero = serde_json::to_value(Probability::ZERO).unwrap();
        assert_eq!(zero, serde_json::json!({"value": 0.0, "log10": null}));
    }

    #[test]
    fn metadata_serialises_as_its_object() {
        let metadata =
            Metadata::from_value(serde_json::json!({"pump": 3, "shift": "night"})).unwrap();
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"pump":3,"shift":"night"}"#
        );
    }
}
