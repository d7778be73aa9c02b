//! A pattern's metadata: a small JSON object an application stores with a pattern and gets back
//! with it and with every match it explains ("pump-3, normal, night shift").
//!
//! The engine never looks inside it; it keeps the object as compact JSON text, because that is
//! what is written to storage, sent to replicas and answered, and it is a fraction of the size of
//! a parsed tree. One rule decides what is accepted, wherever the object comes from (a request,
//! a stored row, another replica's log entry): [`Metadata::from_value`].

use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// The longest metadata accepted, in bytes of compact JSON: room for a few dozen labels, while a
/// million patterns carrying the most take at most 2 GiB.
pub const MAX_METADATA_BYTES: usize = 2048;

/// A JSON object of at most [`MAX_METADATA_BYTES`] as compact text, its keys in sorted order.
/// Cloning shares the text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metadata(Arc<str>);

/// Why a value is not metadata.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata is a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("metadata takes {0} bytes as compact JSON; at most {MAX_METADATA_BYTES} are accepted")]
    TooLarge(usize),
    #[error("metadata is not valid JSON: {0}")]
    Unparsable(String),
}

impl Metadata {
    /// Metadata from a JSON value: an object whose compact text fits in [`MAX_METADATA_BYTES`].
    pub fn from_value(value: Value) -> Result<Metadata, MetadataError> {
        let object: Map<String, Value> = match value {
            Value::Object(object) => object,
            Value::Null => return Err(MetadataError::NotAnObject("null")),
            Value::Bool(_) => return Err(MetadataError::NotAnObject("a boolean")),
            Value::Number(_) => return Err(MetadataError::NotAnObject("a number")),
            Value::String(_) => return Err(MetadataError::NotAnObject("a string")),
            Value::Array(_) => return Err(MetadataError::NotAnObject("an array")),
        };
        let text = Value::Object(object).to_string();
        if text.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge(text.len()));
        }
        Ok(Metadata(text.into()))
    }

    /// Metadata from stored text (a row, a log entry), checked by the same rule as a request's.
    pub fn parse(text: &str) -> Result<Metadata, MetadataError> {
        let value = serde_json::from_str(text)
            .map_err(|error| MetadataError::Unparsable(error.to_string()))?;
        Metadata::from_value(value)
    }

    /// The object as compact JSON.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes of its text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Metadata is answered as the JSON object it is, not as a string holding it. Its text was
/// produced by serde_json from a parsed object, so reading it back cannot fail in practice.
impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(self.as_str()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_kept_as_compact_text_with_sorted_keys() {
        let metadata = Metadata::from_value(json!({"shift": "night", "pump": 3})).unwrap();
        assert_eq!(metadata.as_str(), r#"{"pump":3,"shift":"night"}"#);
        let parsed = Metadata::parse("{ \"shift\" : \"night\",\n \"pump\": 3 }").unwrap();
        assert_eq!(parsed, metadata);
    }

    #[test]
    fn anything_but_an_object_is_refused_naming_what_it_is() {
        for (value, what) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(3), "a number"),
            (json!("pump"), "a string"),
            (json!([1]), "an array"),
        ] {
            assert_eq!(
                Metadata::from_value(value),
                Err(MetadataError::NotAnObject(what))
            );
        }
        assert!(matches!(
            Metadata::parse("{\"a\":"),
            Err(MetadataError::Unparsable(_))
        ));
    }

    #[test]
    fn the_size_limit_counts_compact_bytes() {
        // {"k":"…"} is 8 bytes of structure around the string.
        let fits = json!({"k": "x".repeat(MAX_METADATA_BYTES - 8)});
        assert_eq!(
            Metadata::from_value(fits).unwrap().len(),
            MAX_METADATA_BYTES
        );
        let over = json!({"k": "x".repeat(MAX_METADATA_BYTES - 7)});
        assert_eq!(
            Metadata::from_value(over),
            Err(MetadataError::TooLarge(MAX_METADATA_BYTES + 1))
        );
        // Whitespace in what was sent does not count against the limit.
        let spaced = format!("{{ \"k\" :   \"{}\" }}", "x".repeat(MAX_METADATA_BYTES - 8));
        assert!(Metadata::parse(&spaced).is_ok());
    }

    #[test]
    fn metadata_serialises_as_its_object() {
        let metadata = Metadata::from_value(json!({"pump": 3, "shift": "night"})).unwrap();
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"pump":3,"shift":"night"}"#
        );
    }
}
