//! What a space's threshold means in each field's own units.
//!
//! Changing one field of a stored record by `k` buckets removes `k` of the record's `a` bits
//! and adds `k` others, which is exactly the theory's noise: the segment that holds the record
//! samples `s` of its bits, and it still matches while at least `theta` of them stay active. So
//! the theory's miss probability for `k` noise bits is the chance the changed record goes
//! unrecognised, and the largest `k` that keeps it under 1%, in the field's units, is how far
//! that field may move before the memory stops recognising the record.

use super::{Encoder, Field, Kind, TimePart};
use crate::theory::{self, Probability};
use serde::Serialize;
use std::collections::BTreeMap;

/// The miss probability a change may reach and still count as recognised: 1%.
pub const MISS_LIMIT: f64 = 0.01;

/// What each field of a space's encoder means under the space's parameters, by field name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EncoderMeaning {
    pub fields: BTreeMap<String, FieldMeaning>,
}

/// One field's meaning under a space's parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldMeaning {
    #[serde(skip)]
    pub name: String,
    /// The field's share of a record's bits.
    pub active_bits: u32,
    /// The most of the field's bits a change may replace while the record is still recognised
    /// with probability at least 99%.
    pub recognised_bits_changed: u32,
    /// The largest change, in `unit` (a number field's own units when there is none), within which a stored record is still recognised with
    /// probability at least 99% when only this field changes; `None` where no change of this
    /// field alone makes a record unrecognised, or where the field has no distance (category,
    /// text).
    pub recognition_radius: Option<f64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub unit: &'static str,
    /// The chance a stored record is still recognised when this field alone takes an unrelated
    /// value.
    pub match_if_changed_entirely: Probability,
    /// The bits this field adds, on average, to the chance overlap of two unrelated records.
    pub chance_overlap_bits: f64,
    /// A plain warning when this field alone cannot tell records apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The meaning of every field, by name.
pub fn of(encoder: &Encoder, n: u32, s: u32, theta: u32) -> EncoderMeaning {
    EncoderMeaning {
        fields: meanings(encoder, n, s, theta)
            .into_iter()
            .map(|meaning| (meaning.name.clone(), meaning))
            .collect(),
    }
}

/// Each field's meaning for a space of `n` inputs whose segments sample `s` of a record's `a`
/// bits and match at `theta`.
pub fn meanings(encoder: &Encoder, n: u32, s: u32, theta: u32) -> Vec<FieldMeaning> {
    let a = u64::from(encoder.active_bits());
    let (s, theta) = (u64::from(s), u64::from(theta));
    let miss = |k: u64| theory::false_miss(a, s, k.min(a), theta).value();
    encoder
        .fields
        .iter()
        .map(|field| {
            let share = u64::from(field.active_bits);
            let bits = theory::largest_satisfying(0, share + 1, |k| miss(k) <= MISS_LIMIT);
            let stays = Probability::from_value(1.0 - miss(share));
            let radius = if bits >= share {
                None
            } else {
                radius(field, bits as u32)
            };
            let warning = (stays.value() >= 0.5).then(|| {
                format!(
                    "a stored record whose {name} alone changes to an unrelated value is still recognised with probability {p:.2}: {name} alone cannot tell stored records apart",
                    name = field.name,
                    p = stays.value()
                )
            });
            FieldMeaning {
                name: field.name.clone(),
                active_bits: field.active_bits,
                recognised_bits_changed: bits as u32,
                recognition_radius: radius,
                unit: unit(field),
                match_if_changed_entirely: stays,
                chance_overlap_bits: f64::from(field.active_bits) * a as f64 / f64::from(n),
                warning,
            }
        })
        .collect()
}

fn unit(field: &Field) -> &'static str {
    match &field.kind {
        Kind::Time { .. } => "minutes",
        Kind::Vector { .. } => "cosine distance",
        // A number's radius is in the number's own units, which only the client knows.
        Kind::Number { .. } | Kind::Category { .. } | Kind::Text { .. } => "",
    }
}

/// The change, in the field's units, that replaces at most `bits` of its bits.
fn radius(field: &Field, bits: u32) -> Option<f64> {
    match &field.kind {
        // Values `d` apart lie at most ceil(d / resolution) buckets apart.
        Kind::Number { scalar, .. } => Some(f64::from(bits) * scalar.resolution()),
        Kind::Time { parts, .. } => Some(time_radius(parts, bits)),
        Kind::Vector { .. } => vector_radius(field, bits),
        Kind::Category { .. } | Kind::Text { .. } => None,
    }
}

/// The largest shift of a timestamp, in minutes, that replaces at most `bits` bits over the
/// field's cyclic components (each moves by ceil(shift / resolution) buckets, at most its
/// share). The weekend flag is left out: it changes only at the weekend's edges.
fn time_radius(parts: &[TimePart], bits: u32) -> f64 {
    let minutes_per_unit = |part: &TimePart| match part.part.unit() {
        "minutes" => 1.0,
        "hours" => 60.0,
        _ => 1440.0,
    };
    let changed = |shift: f64| -> u32 {
        parts
            .iter()
            .filter_map(|part| {
                let scalar = part.scalar.as_ref()?;
                let buckets = (shift / minutes_per_unit(part) / scalar.resolution()).ceil();
                Some((buckets as u32).min(part.active_bits))
            })
            .sum()
    };
    let (mut low, mut high) = (0.0f64, 366.0 * 1440.0);
    if changed(high) <= bits {
        return high;
    }
    for _ in 0..64 {
        let middle = (low + high) / 2.0;
        if changed(middle) <= bits {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// The cosine distance at which the expected shared bits of a vector field's codes fall to
/// `share - bits`.
fn vector_radius(field: &Field, bits: u32) -> Option<f64> {
    let Kind::Vector { .. } = field.kind else {
        return None;
    };
    let share = f64::from(field.active_bits);
    let n = f64::from(field_outputs(field));
    let wanted = share - f64::from(bits);
    let (mut low, mut high) = (-1.0f64, 1.0f64);
    for _ in 0..60 {
        let rho = (low + high) / 2.0;
        if expected_shared_bits(share, n, rho) >= wanted {
            high = rho;
        } else {
            low = rho;
        }
    }
    Some(1.0 - high)
}

fn field_outputs(field: &Field) -> u32 {
    match &field.kind {
        Kind::Vector { projection, .. } => projection.outputs(),
        Kind::Number { .. } | Kind::Category { .. } | Kind::Time { .. } | Kind::Text { .. } => 0,
    }
}

/// The bits two vectors with cosine `rho` are expected to share when each keeps its strongest
/// `share` of `n` Gaussian projections: `share * Phi2(t, t; rho) / p`, `p = share / n`,
/// `t = Phi^-1(1 - p)`.
pub fn expected_shared_bits(share: f64, n: f64, rho: f64) -> f64 {
    let p = share / n;
    let t = upper_quantile(p);
    share * both_above(t, rho) / p
}

/// P(X > t, Y > t) for standard normals with correlation `rho` (Plackett's identity, with
/// r = sin(angle) so the integrand is smooth up to rho = 1): Q(t)^2 plus
/// (1 / 2 pi) times the integral over [0, asin(rho)] of exp(-t^2 / (1 + sin(angle))).
fn both_above(t: f64, rho: f64) -> f64 {
    let q = upper_tail(t);
    let end = rho.clamp(-1.0, 1.0).asin();
    let steps = 400;
    let h = end / f64::from(steps);
    let f = |angle: f64| (-t * t / (1.0 + angle.sin())).exp();
    // Simpson's rule; near rho = -1 the integrand vanishes, so the endpoint is harmless.
    let inner: f64 = (1..steps)
        .map(|i| {
            let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
            weight * f(f64::from(i) * h)
        })
        .sum();
    let end_value = if end <= -std::f64::consts::FRAC_PI_2 + 1e-12 {
        0.0
    } else {
        f(end)
    };
    let integral = h / 3.0 * (f(0.0) + inner + end_value);
    (q * q + integral / (2.0 * std::f64::consts::PI)).max(0.0)
}

/// Q(t) = P(X > t) for a standard normal: erfc(t / sqrt 2) / 2.
fn upper_tail(t: f64) -> f64 {
    0.5 * erfc(t / std::f64::consts::SQRT_2)
}

/// The t with Q(t) = p, by bisection (Q is monotone).
fn upper_quantile(p: f64) -> f64 {
    let (mut low, mut high) = (-40.0f64, 40.0f64);
    for _ in 0..100 {
        let middle = (low + high) / 2.0;
        if upper_tail(middle) > p {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low + high) / 2.0
}

/// The complementary error function (W. J. Cody's rational Chebyshev form as in Numerical
/// Recipes' erfcc: relative error below 1.2e-7 everywhere, ample for an expected overlap).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_overlap_formula_gives_the_published_figures() {
        // n = 2048, a_f = 40: 6.7 bits at rho 0.5, 16.8 at 0.8, 23.1 at 0.9, 27.9 at 0.95, and
        // chance (a_f^2 / n = 0.78) at rho 0.
        for (rho, bits) in [
            (0.5, 6.7),
            (0.8, 16.8),
            (0.9, 23.1),
            (0.95, 27.9),
            (0.0, 0.78),
        ] {
            let got = expected_shared_bits(40.0, 2048.0, rho);
            assert!((got - bits).abs() < 0.06, "rho {rho}: {got} against {bits}");
        }
        assert!((expected_shared_bits(40.0, 2048.0, 1.0) - 40.0).abs() < 0.05);
    }

    #[test]
    fn a_time_shift_moves_every_cyclic_component_at_once() {
        // time_of_day: 6 bits of 40 minutes; hour_of_week: 8 bits of 1.5 hours (90 minutes).
        let spec = serde_json::from_value(serde_json::json!({"fields": {"t": {
            "type": "time", "timezone": "UTC", "weekend": {"active_bits": 2},
            "time_of_day": {"active_bits": 6}, "hour_of_week": {"active_bits": 8}}}}))
        .unwrap();
        let encoder = Encoder::new(&spec, 2048, 0).unwrap();
        let Kind::Time { parts, .. } = &encoder.fields[0].kind else {
            panic!("a time field")
        };
        // Alone, 3 bits of time of day allow 120 minutes; with the hour of week moving too, a
        // shift of s minutes changes ceil(s / 40) + ceil(s / 90) bits: 80 minutes is 2 + 1.
        let radius = time_radius(parts, 3);
        assert!((radius - 80.0).abs() < 1e-6, "{radius}");
        // Every bit of both: a shift of at least 6 * 40 and 8 * 90 minutes.
        assert!((time_radius(parts, 14) - 366.0 * 1440.0).abs() < 1e-6);
        assert_eq!(time_radius(parts, 0), 0.0);
    }

    #[test]
    fn erfc_is_accurate_where_it_is_used() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_207_050_285_1).abs() < 1e-7);
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() < 1e-7);
        assert!((upper_quantile(0.025) - 1.959_963_985).abs() < 1e-5);
    }
}
