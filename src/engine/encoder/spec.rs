//! The encoder as a client writes it (`{"fields": {name: field}}`), what is refused and why, and
//! the limits that bound a record's cost.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The most fields an encoder may have.
pub const MAX_FIELDS: usize = 64;
/// The largest input space a vector or text field may project onto (each output costs work on
/// every record).
pub const MAX_PROJECTED_INPUT_SIZE: u32 = 65_536;
/// The most dimensions a vector field may have.
pub const MAX_DIMENSIONS: u32 = 65_536;
/// A record's texts' distinct words times the input size, at most: a word costs one weight per
/// output, and this bounds a record's texts to a few milliseconds in all.
pub const MAX_TEXT_WORK: u64 = 1 << 22;

/// An encoder as a client writes it: `{"fields": {name: field, ...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    pub fields: BTreeMap<String, FieldSpec>,
}

/// One field of an encoder, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldSpec {
    /// A number: a random distributed scalar code.
    Number {
        active_bits: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        radius: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<f64>,
    },
    /// A string, integer or boolean: a hashed code per distinct value.
    Category { active_bits: u32 },
    /// An RFC 3339 timestamp, read in `timezone`, as the calendar components given.
    Time {
        timezone: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_bits: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_of_day: Option<ComponentSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hour_of_week: Option<ComponentSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weekend: Option<ComponentSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day_of_year: Option<ComponentSpec>,
    },
    /// A dense vector of `dimensions` numbers (an embedding): its strongest random projections.
    Vector {
        dimensions: u32,
        active_bits: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f64>>,
    },
    /// A short text: the sum of its words' seeded vectors, strongest outputs kept.
    Text { active_bits: u32 },
}

/// A calendar component of a time field: its share of bits and its resolution (or radius) in
/// the component's unit (minutes of the day, hours of the week, days of the year).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    pub active_bits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<f64>,
}

/// Why an encoder spec was refused: where (`fields.temperature.resolution`) and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SpecError {
    pub path: String,
    pub reason: String,
}

pub(super) fn refuse<T>(
    path: impl Into<String>,
    reason: impl Into<String>,
) -> Result<T, SpecError> {
    Err(SpecError {
        path: path.into(),
        reason: reason.into(),
    })
}

impl fmt::Display for FieldSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldSpec::Number { .. } => "number",
            FieldSpec::Category { .. } => "category",
            FieldSpec::Time { .. } => "time",
            FieldSpec::Vector { .. } => "vector",
            FieldSpec::Text { .. } => "text",
        })
    }
}
