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
//! - [`meaning`]: what a space's threshold means in each field's own units.

mod hash;
pub mod meaning;
mod projection;
mod scalar;
mod time;

use crate::engine::Name;
use crate::rng::{FNV1A_START, fnv1a};
use hash::{combine, onto};
use projection::Projection;
use scalar::Scalar;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use time::Part;

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

fn refuse<T>(path: impl Into<String>, reason: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        path: path.into(),
        reason: reason.into(),
    })
}

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

#[derive(Clone, Debug)]
struct Field {
    name: String,
    active_bits: u32,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Number {
        key: u64,
        scalar: Scalar,
    },
    Category {
        key: u64,
    },
    Time {
        zone: jiff::tz::TimeZone,
        parts: Vec<TimePart>,
    },
    Vector {
        projection: Projection,
        mean: Option<Vec<f64>>,
    },
    Text {
        key: u64,
    },
}

#[derive(Clone, Debug)]
struct TimePart {
    part: Part,
    key: u64,
    active_bits: u32,
    /// `None` for the weekend flag, a category of two values.
    scalar: Option<Scalar>,
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

impl Field {
    /// A field from its spec, and the spec as stored (defaults filled in).
    fn new(
        name: &str,
        spec: &FieldSpec,
        input_size: u32,
        seed: u64,
    ) -> Result<(Field, FieldSpec), SpecError> {
        let path = format!("fields.{name}");
        let key = hash::field_key(seed, name);
        let share = |active_bits: u32, at: &str| -> Result<u32, SpecError> {
            if active_bits == 0 || active_bits > input_size {
                return refuse(
                    format!("{at}.active_bits"),
                    format!("must be in 1..={input_size} (input_size), not {active_bits}"),
                );
            }
            Ok(active_bits)
        };
        let (active_bits, kind, normal) = match spec {
            &FieldSpec::Number {
                active_bits,
                resolution,
                radius,
                period,
            } => {
                let active_bits = share(active_bits, &path)?;
                let scalar = Scalar::new(active_bits, resolution, radius, period)
                    .or_else(|reason| refuse(path.clone(), reason))?;
                let normal = FieldSpec::Number {
                    active_bits,
                    resolution: Some(scalar.requested_resolution()),
                    radius: None,
                    period,
                };
                (active_bits, Kind::Number { key, scalar }, normal)
            }
            &FieldSpec::Category { active_bits } => {
                let active_bits = share(active_bits, &path)?;
                (active_bits, Kind::Category { key }, spec.clone())
            }
            FieldSpec::Time {
                timezone,
                active_bits,
                time_of_day,
                hour_of_week,
                weekend,
                day_of_year,
            } => {
                let zone = time::zone(timezone)
                    .or_else(|reason| refuse(format!("{path}.timezone"), reason))?;
                let given = [time_of_day, hour_of_week, weekend, day_of_year];
                let mut parts = Vec::new();
                let mut normal_parts: [Option<ComponentSpec>; 4] = Default::default();
                for ((part, component), normal) in
                    Part::ALL.into_iter().zip(given).zip(&mut normal_parts)
                {
                    let Some(component) = component else { continue };
                    let at = format!("{path}.{}", part.name());
                    let bits = share(component.active_bits, &at)?;
                    let scalar = match part.period() {
                        None => {
                            if component.resolution.is_some() || component.radius.is_some() {
                                return refuse(at, "weekend is a flag: it takes active_bits only");
                            }
                            None
                        }
                        Some(period) => {
                            let radius = (component.resolution.is_none()
                                && component.radius.is_none())
                            .then(|| part.default_radius())
                            .or(component.radius);
                            Some(
                                Scalar::new(bits, component.resolution, radius, Some(period))
                                    .or_else(|reason| refuse(at.clone(), reason))?,
                            )
                        }
                    };
                    *normal = Some(ComponentSpec {
                        active_bits: bits,
                        resolution: scalar.as_ref().map(Scalar::requested_resolution),
                        radius: None,
                    });
                    parts.push(TimePart {
                        part,
                        key: hash::field_key(seed, &format!("{name}.{}", part.name())),
                        active_bits: bits,
                        scalar,
                    });
                }
                if parts.is_empty() {
                    return refuse(
                        path,
                        "a time field needs at least one of time_of_day, hour_of_week, weekend, day_of_year",
                    );
                }
                let sum: u32 = parts.iter().map(|p| p.active_bits).sum();
                if let Some(declared) = *active_bits
                    && declared != sum
                {
                    return refuse(
                        format!("{path}.active_bits"),
                        format!("is {declared}, but its components' active_bits sum to {sum}"),
                    );
                }
                let [time_of_day, hour_of_week, weekend, day_of_year] = normal_parts;
                let normal = FieldSpec::Time {
                    timezone: timezone.clone(),
                    active_bits: Some(sum),
                    time_of_day,
                    hour_of_week,
                    weekend,
                    day_of_year,
                };
                (share(sum, &path)?, Kind::Time { zone, parts }, normal)
            }
            FieldSpec::Vector {
                dimensions,
                active_bits,
                mean,
            } => {
                let active_bits = share(*active_bits, &path)?;
                projected_size(input_size, &path)?;
                if !(1..=MAX_DIMENSIONS).contains(dimensions) {
                    return refuse(
                        format!("{path}.dimensions"),
                        format!("must be in 1..={MAX_DIMENSIONS}, not {dimensions}"),
                    );
                }
                if let Some(mean) = mean {
                    if mean.len() != *dimensions as usize {
                        return refuse(
                            format!("{path}.mean"),
                            format!("has {} values, not dimensions ({dimensions})", mean.len()),
                        );
                    }
                    if let Some(i) = mean.iter().position(|x| !x.is_finite()) {
                        return refuse(format!("{path}.mean[{i}]"), "must be a finite number");
                    }
                }
                let projection = Projection::new(key, *dimensions, input_size);
                let kind = Kind::Vector {
                    projection,
                    mean: mean.clone(),
                };
                (active_bits, kind, spec.clone())
            }
            &FieldSpec::Text { active_bits } => {
                let active_bits = share(active_bits, &path)?;
                projected_size(input_size, &path)?;
                (active_bits, Kind::Text { key }, spec.clone())
            }
        };
        let field = Field {
            name: name.to_owned(),
            active_bits,
            kind,
        };
        Ok((field, normal))
    }

    /// This field's bits for a (non-null) value, avoiding bits earlier fields took.
    fn encode(&self, value: &Value, n: u32, taken: &mut Taken) -> Result<Vec<u32>, RecordError> {
        let wrong = |expected| RecordError::WrongType {
            field: self.name.clone(),
            expected,
        };
        let bad = |reason: String| RecordError::BadValue {
            field: self.name.clone(),
            reason,
        };
        let mut bits = Vec::with_capacity(self.active_bits as usize);
        match &self.kind {
            Kind::Number { key, scalar } => {
                let x = value.as_f64().ok_or_else(|| wrong("a number"))?;
                let bucket = scalar.bucket(x, self.active_bits).map_err(bad)?;
                for k in scalar.keys(bucket, self.active_bits) {
                    bits.push(taken.place(combine(*key, k), n));
                }
            }
            Kind::Category { key } => {
                let value_key = category_key(value)
                    .ok_or_else(|| wrong("a string, an integer or a boolean"))?;
                let slot = combine(*key, value_key);
                for k in 0..u64::from(self.active_bits) {
                    bits.push(taken.place(combine(slot, k), n));
                }
            }
            Kind::Time { zone, parts } => {
                let text = value
                    .as_str()
                    .ok_or_else(|| wrong("an RFC 3339 timestamp string"))?;
                let at = time::local(text, zone).map_err(bad)?;
                for part in parts {
                    let x = time::value(part.part, &at);
                    match &part.scalar {
                        Some(scalar) => {
                            let bucket = scalar.bucket(x, part.active_bits).map_err(bad)?;
                            for k in scalar.keys(bucket, part.active_bits) {
                                bits.push(taken.place(combine(part.key, k), n));
                            }
                        }
                        None => {
                            let slot = combine(part.key, x as u64);
                            for k in 0..u64::from(part.active_bits) {
                                bits.push(taken.place(combine(slot, k), n));
                            }
                        }
                    }
                }
            }
            Kind::Vector { projection, mean } => {
                let expected = "an array of `dimensions` numbers";
                let items = value.as_array().ok_or_else(|| wrong(expected))?;
                if items.len() != projection.dimensions() as usize {
                    return Err(bad(format!(
                        "has {} values, not dimensions ({})",
                        items.len(),
                        projection.dimensions()
                    )));
                }
                let mut input = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let x = item.as_f64().ok_or_else(|| wrong(expected))?;
                    input.push(x - mean.as_ref().map_or(0.0, |mean| mean[i]));
                }
                let scores = projection.apply(&input);
                if scores.iter().any(|s| !s.is_finite()) {
                    return Err(bad("its values are too large to project".into()));
                }
                taken.rank(&scores, self.active_bits, &mut bits);
            }
            Kind::Text { key } => {
                let text = value.as_str().ok_or_else(|| wrong("a string"))?;
                // A word costs one weight per output; the record's texts share one budget, so
                // counting stops as soon as it is spent, however long the text.
                let most = taken.text_words_left(n);
                let mut counts: BTreeMap<String, u32> = BTreeMap::new();
                for word in projection::words(text) {
                    *counts.entry(word).or_default() += 1;
                    if counts.len() as u64 > most {
                        return Err(bad(format!(
                            "has more distinct words than fit: a record's texts may hold at most {} in all at an input size of {n}",
                            MAX_TEXT_WORK / u64::from(n)
                        )));
                    }
                }
                taken.text_words += counts.len() as u64;
                if counts.is_empty() {
                    return Ok(bits);
                }
                let mut scores = vec![0.0; n as usize];
                let mut weights = vec![0.0; n as usize];
                for (word, count) in counts {
                    weights.fill(0.0);
                    projection::word_weights(
                        combine(*key, hash::bytes(word.as_bytes())),
                        n,
                        &mut weights,
                    );
                    for (score, weight) in scores.iter_mut().zip(&weights) {
                        *score += f64::from(count) * weight;
                    }
                }
                taken.rank(&scores, self.active_bits, &mut bits);
            }
        }
        bits.sort_unstable();
        Ok(bits)
    }
}

/// A category value's key: the FNV-1a hash of a type letter and the value's text (`s` and the
/// string, `b` and 0 or 1, `i` and the integer in decimal), so `"1"`, `1` and `true` differ.
fn category_key(value: &Value) -> Option<u64> {
    let tagged = |tag: &[u8], text: &[u8]| fnv1a(fnv1a(FNV1A_START, tag), text);
    match value {
        Value::String(text) => Some(tagged(b"s", text.as_bytes())),
        Value::Bool(flag) => Some(tagged(b"b", if *flag { b"1" } else { b"0" })),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(i), _) => Some(tagged(b"i", i.to_string().as_bytes())),
            (None, Some(u)) => Some(tagged(b"i", u.to_string().as_bytes())),
            (None, None) => None,
        },
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn projected_size(input_size: u32, path: &str) -> Result<(), SpecError> {
    if input_size > MAX_PROJECTED_INPUT_SIZE {
        return refuse(
            path,
            format!(
                "vector and text fields need input_size at most {MAX_PROJECTED_INPUT_SIZE}, not {input_size}"
            ),
        );
    }
    Ok(())
}

/// The bits a record's fields have taken so far.
struct Taken {
    words: Vec<u64>,
    count: u32,
    /// Distinct words the record's text fields have weighed so far.
    text_words: u64,
}

/// The largest bitset [`Taken::sorted`] scans rather than sorting (65,536 bits).
const SCANNED_WORDS: usize = 1024;

/// Probes a key makes before it takes the next free bit after its last probe.
const PROBES: u64 = 8;

impl Taken {
    fn new(n: u32) -> Taken {
        Taken {
            words: vec![0; n.div_ceil(64) as usize],
            count: 0,
            text_words: 0,
        }
    }

    /// Distinct words the record's texts may still have ([`MAX_TEXT_WORK`] over `n`).
    fn text_words_left(&self, n: u32) -> u64 {
        (MAX_TEXT_WORK / u64::from(n)).saturating_sub(self.text_words)
    }

    /// Every bit taken, sorted: read off the bitset where it is small (a few hundred words
    /// scan faster than a sort), sorted from the fields' lists where it is large.
    fn sorted(&self, fields: &[Vec<u32>]) -> Vec<u32> {
        let mut active = Vec::with_capacity(self.count as usize);
        if self.words.len() <= SCANNED_WORDS {
            for (index, &word) in self.words.iter().enumerate() {
                let mut rest = word;
                while rest != 0 {
                    active.push(index as u32 * 64 + rest.trailing_zeros());
                    rest &= rest - 1;
                }
            }
        } else {
            active.extend(fields.iter().flatten().copied());
            active.sort_unstable();
        }
        active
    }

    fn has(&self, bit: u32) -> bool {
        self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn take(&mut self, bit: u32) {
        self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        self.count += 1;
    }

    /// The bit a hashed key lands on: its first free probe, or when the space is crowded the
    /// next free bit after its last probe. A free bit exists: the fields' shares sum to at
    /// most `n`.
    fn place(&mut self, slot: u64, n: u32) -> u32 {
        let mut bit = 0;
        for probe in 0..PROBES {
            bit = onto(combine(slot, probe), n);
            if !self.has(bit) {
                self.take(bit);
                return bit;
            }
        }
        while self.has(bit) {
            bit = (bit + 1) % n;
        }
        self.take(bit);
        bit
    }

    /// The `share` strongest outputs not yet taken.
    fn rank(&mut self, scores: &[f64], share: u32, into: &mut Vec<u32>) {
        let order = projection::strongest(scores, (share + self.count) as usize);
        for bit in order {
            if into.len() == share as usize {
                break;
            }
            if !self.has(bit) {
                self.take(bit);
                into.push(bit);
            }
        }
    }
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

#[cfg(test)]
mod tests;
