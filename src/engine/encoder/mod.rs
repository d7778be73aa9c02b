//! Encoders: records of numbers, times, categories, vectors and text in, sparse codes out.
//!
//! Applications sense readings, not bit lists. A space may carry an [`Encoder`]: named fields,
//! each with a type and its share of the space's active bits, so a full record encodes to exactly
//! `a` distinct bits and the theory's `a` holds. Every code is stateless and seeded: it depends
//! only on (space seed, field name, value), never on what arrived before, so restarts, replicas,
//! the CLI and other machines give identical codes (`hash` is fixed forever).
//!
//! A field's bits are placed one key at a time: a key hashes to a bit, and if an earlier key (of
//! this field or a field before it, in name order) already holds that bit, it probes on. So a
//! field always gives exactly its share, distinct from other fields', and two values that share
//! a key share its bit, except in the rare case a probe moved it.
//!
//! - `scalar`: numbers into buckets (plain and cyclic); `time`: timestamps into calendar parts;
//!   `projection`: vectors and texts ranked onto the outputs; `hash`: the frozen hash.
//! - `spec`: the encoder as a client writes it, and its limits; `field`: one field checked and
//!   encoded; `taken`: the bits a record's fields have taken, probed one key at a time.
//! - [`meaning`]: what a space's threshold means in each field's own units.

mod field;
mod hash;
pub mod meaning;
mod projection;
mod scalar;
mod spec;
mod taken;
mod time;

pub use spec::{
    ComponentSpec, EncoderSpec, FieldSpec, MAX_DIMENSIONS, MAX_FIELDS, MAX_PROJECTED_INPUT_SIZE,
    MAX_TEXT_WORK, SpecError,
};

use crate::engine::Name;
use field::{Field, Kind, TimePart};
use serde::Serialize;
use serde_json::Value;
use spec::refuse;
use std::collections::BTreeMap;
use taken::Taken;

/// Why a record could not be encoded. Each names the field (dotted) it concerns.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("a record is a JSON object of field values")]
    NotAnObject,
    #[error("{0} is not a field of this space's encoder")]
    UnknownField(String),
    #[error("{0} is given twice (nested and dotted)")]
    GivenTwice(String),
    #[error("{field} must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("{field}: {reason}")]
    BadValue { field: String, reason: String },
}

/// A validated encoder for one space: what [`Encoder::encode`] needs, built once.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// The spec as stored: defaults filled in, radii turned into resolutions.
    spec: EncoderSpec,
    input_size: u32,
    fields: Vec<Field>,
}

/// An encoder is shown and stored as its spec.
impl Serialize for Encoder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl PartialEq for Encoder {
    /// Two encoders are the same when their stored specs and input sizes are: everything else
    /// is derived from those and the seed, which the space compares on its own.
    fn eq(&self, other: &Encoder) -> bool {
        self.spec == other.spec && self.input_size == other.input_size
    }
}

/// A record's code: its active bits, and the bits each field contributed (in the encoder's
/// field order; empty for a field the record left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub active: Vec<u32>,
    pub fields: Vec<Vec<u32>>,
}

impl Encoder {
    /// Checks a spec against the space's input size and builds what encoding needs.
    pub fn new(spec: &EncoderSpec, input_size: u32, seed: u64) -> Result<Encoder, SpecError> {
        if spec.fields.is_empty() {
            return refuse("fields", "an encoder needs at least one field");
        }
        if spec.fields.len() > MAX_FIELDS {
            return refuse(
                "fields",
                format!(
                    "an encoder has at most {MAX_FIELDS} fields, not {}",
                    spec.fields.len()
                ),
            );
        }
        let names: Vec<&String> = spec.fields.keys().collect();
        for name in &names {
            if let Err(error) = Name::parse(name) {
                return refuse(format!("fields.{name}"), error.to_string());
            }
        }
        // Sorted, so a name that is a dotted prefix of another sorts right before a name that
        // extends it (possibly after siblings such as "a-b" < "a.b"): compare each to all later
        // names sharing its first character; fields are few.
        for (i, name) in names.iter().enumerate() {
            let nested = format!("{name}.");
            if let Some(inner) = names[i + 1..].iter().find(|n| n.starts_with(&nested)) {
                return refuse(
                    format!("fields.{inner}"),
                    format!(
                        "lies inside field {name}: a field is a value or an object of fields, not both"
                    ),
                );
            }
        }
        let mut stored = BTreeMap::new();
        let mut fields = Vec::with_capacity(spec.fields.len());
        let mut total: u64 = 0;
        for (name, field_spec) in &spec.fields {
            let (field, normal) = Field::new(name, field_spec, input_size, seed)?;
            total += u64::from(field.active_bits);
            stored.insert(name.clone(), normal);
            fields.push(field);
        }
        if total > u64::from(input_size) {
            return refuse(
                "fields",
                format!(
                    "the fields' active_bits sum to {total}, more than input_size ({input_size})"
                ),
            );
        }
        Ok(Encoder {
            spec: EncoderSpec { fields: stored },
            input_size,
            fields,
        })
    }

    /// The spec as stored and shown: defaults filled in.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The bits a full record has: the sum of the fields' shares.
    pub fn active_bits(&self) -> u32 {
        self.fields.iter().map(|field| field.active_bits).sum()
    }

    /// The fields' names, in the order [`Code::fields`] lists them.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|field| field.name.as_str())
    }

    /// A code's per-field bits by field name, as the API shows them.
    pub fn named_fields(&self, fields: Vec<Vec<u32>>) -> serde_json::Map<String, Value> {
        self.field_names()
            .zip(fields)
            .map(|(name, bits)| (name.to_owned(), Value::from(bits)))
            .collect()
    }

    /// Bytes the encoder holds (vector fields keep their projection).
    pub fn memory_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|field| match &field.kind {
                Kind::Vector { projection, mean } => {
                    projection.memory_bytes() + mean.as_ref().map_or(0, |m| m.len() * 8)
                }
                Kind::Number { .. }
                | Kind::Category { .. }
                | Kind::Time { .. }
                | Kind::Text { .. } => 0,
            })
            .sum::<usize>()
            + std::mem::size_of::<Encoder>()
    }

    /// Encodes a record: a JSON object whose keys are field names, dotted or nested
    /// (`{"engine": {"temperature": 80}}` is `engine.temperature`). A missing or null field
    /// contributes no bits.
    pub fn encode(&self, record: &Value) -> Result<Code, RecordError> {
        let Value::Object(object) = record else {
            return Err(RecordError::NotAnObject);
        };
        let mut values: Vec<Option<&Value>> = vec![None; self.fields.len()];
        self.collect(object, "", &mut values)?;
        let mut taken = Taken::new(self.input_size);
        let mut fields = Vec::with_capacity(self.fields.len());
        for (field, value) in self.fields.iter().zip(values) {
            let bits = match value {
                None | Some(Value::Null) => Vec::new(),
                Some(value) => field.encode(value, self.input_size, &mut taken)?,
            };
            fields.push(bits);
        }
        let active = taken.sorted(&fields);
        Ok(Code { active, fields })
    }

    /// Finds each field's value in a (possibly nested) record, refusing keys that are no field.
    fn collect<'a>(
        &self,
        object: &'a serde_json::Map<String, Value>,
        prefix: &str,
        values: &mut [Option<&'a Value>],
    ) -> Result<(), RecordError> {
        for (key, value) in object {
            // Top-level keys (the usual case) are looked up without building a path.
            let path: std::borrow::Cow<str> = if prefix.is_empty() {
                key.into()
            } else {
                format!("{prefix}{key}").into()
            };
            match self
                .fields
                .binary_search_by(|field| field.name.as_str().cmp(&path))
            {
                Ok(index) => {
                    if values[index].replace(value).is_some() {
                        return Err(RecordError::GivenTwice(path.into_owned()));
                    }
                }
                Err(_) => {
                    let nested = format!("{path}.");
                    let holds_fields = self.fields.iter().any(|f| f.name.starts_with(&nested));
                    if !holds_fields {
                        return Err(RecordError::UnknownField(path.into_owned()));
                    }
                    // An object of fields, or null for all of them; any other value stands
                    // where only fields nest.
                    if let Value::Object(inner) = value {
                        self.collect(inner, &nested, values)?;
                    } else if !value.is_null() {
                        return Err(RecordError::UnknownField(path.into_owned()));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
