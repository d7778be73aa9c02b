//! One field of an encoder: its spec checked against the space and turned into what encoding
//! needs ([`Field::new`]), and a value encoded into the field's share of the bits
//! ([`Field::encode`]).

use super::RecordError;
use super::hash::{self, combine};
use super::projection::{self, Projection};
use super::scalar::Scalar;
use super::spec::{
    ComponentSpec, FieldSpec, MAX_DIMENSIONS, MAX_PROJECTED_INPUT_SIZE, MAX_TEXT_WORK, SpecError,
    refuse,
};
use super::taken::Taken;
use super::time::{self, Part};
use crate::rng::{FNV1A_START, fnv1a};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) name: String,
    pub(super) active_bits: u32,
    pub(super) kind: Kind,
}

#[derive(Clone, Debug)]
pub(super) enum Kind {
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
pub(super) struct TimePart {
    pub(super) part: Part,
    pub(super) key: u64,
    pub(super) active_bits: u32,
    /// `None` for the weekend flag, a category of two values.
    pub(super) scalar: Option<Scalar>,
}

impl Field {
    /// A field from its spec, and the spec as stored (defaults filled in).
    pub(super) fn new(
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
    pub(super) fn encode(
        &self,
        value: &Value,
        n: u32,
        taken: &mut Taken,
    ) -> Result<Vec<u32>, RecordError> {
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
pub(super) fn category_key(value: &Value) -> Option<u64> {
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

pub(super) fn projected_size(input_size: u32, path: &str) -> Result<(), SpecError> {
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
