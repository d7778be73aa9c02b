//! A space's parameters: the defaults the theory recommends, the rules that keep them sane, and
//! what the theory says of them ([`SpaceTheory`], computed once when the space is made).

use super::encoder::meaning::{self, EncoderMeaning};
use super::encoder::{Encoder, EncoderSpec};
use crate::theory::limits::MAX_ACTIVE_BITS;
use crate::theory::{self, Dimensions, InvalidParameter, Probability, Spelling};
use serde::Serialize;
use std::sync::Arc;

/// The most segments a neuron may be allowed.
pub const MAX_SEGMENTS_LIMIT: u32 = 65_536;
/// The noise the default threshold is chosen for: 20% of a pattern's active bits replaced.
pub const DEFAULT_NOISE: f64 = 0.2;

/// Parameters as a client gives them (the body of `PUT /v1/spaces/{space}`): the optional ones
/// take the theory's defaults.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceSpec {
    pub input_size: u32,
    /// 0 (or absent) when an encoder gives it: the sum of its fields' shares.
    #[serde(default)]
    pub active_bits: u32,
    pub synapses_per_pattern: Option<u32>,
    pub threshold: Option<u32>,
    pub max_false_match: Option<f64>,
    pub max_segments_per_neuron: Option<u32>,
    pub seed: Option<u64>,
    pub encoder: Option<EncoderSpec>,
}

/// Validated parameters with every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpaceParams {
    /// n: bits in the input space.
    pub input_size: u32,
    /// a: the nominal number of active bits of the space's codes.
    pub active_bits: u32,
    /// s: synapses sampled from each stored pattern.
    pub synapses_per_pattern: u32,
    /// theta: overlap at which a segment matches.
    pub threshold: u32,
    /// The highest false-match probability a segment may reach for a random input of a bits.
    pub max_false_match: f64,
    /// The most segments one neuron may have.
    pub max_segments_per_neuron: u32,
    /// Seeds the sampling of synapses and the encoder's hashes.
    pub seed: u64,
    /// Turns records into patterns, when the space has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<Arc<Encoder>>,
}

fn reject(field: &'static str, reason: impl Into<String>) -> InvalidParameter {
    InvalidParameter::new(field, reason)
}

impl SpaceParams {
    /// Fills in the defaults and checks the parameters against each other.
    pub fn new(spec: &SpaceSpec) -> Result<SpaceParams, InvalidParameter> {
        let (n, a) = (spec.input_size, spec.active_bits);
        let dimensions = |a: u32, s: u32, theta: u32| Dimensions {
            n: n.into(),
            a: a.into(),
            s: s.into(),
            theta: theta.into(),
        };
        // n before the encoder, which builds its fields for it (the other dimensions at their
        // least always pass).
        dimensions(1, 1, 1).check(&Spelling::SPACE)?;
        let seed = spec.seed.unwrap_or(0);
        if seed > i64::MAX as u64 {
            // Seeds are stored as SQLite integers, which are signed 64-bit.
            return Err(reject(
                "seed",
                format!("must be at most {}, not {seed}", i64::MAX),
            ));
        }
        let encoder = match &spec.encoder {
            None => None,
            Some(encoder) => Some(Arc::new(
                Encoder::new(encoder, n, seed).map_err(|e| reject("encoder", e.to_string()))?,
            )),
        };
        let a = match (&encoder, a) {
            (None, 0) => {
                return Err(reject(
                    "active_bits",
                    "is required, unless an encoder gives it (the sum of its fields' active_bits)",
                ));
            }
            (Some(encoder), 0) => encoder.active_bits(),
            (Some(encoder), a) if a != encoder.active_bits() => {
                return Err(reject(
                    "active_bits",
                    format!(
                        "is {a}, but the encoder's fields' active_bits sum to {}: leave it out, or make them agree",
                        encoder.active_bits()
                    ),
                ));
            }
            (_, a) => a,
        };
        let s = spec.synapses_per_pattern.unwrap_or(a.min(24));
        // The engine's own bound on a pattern's bits, then n, a and s against each other, before
        // the default threshold, which is computed from them.
        if u64::from(a) > MAX_ACTIVE_BITS {
            return Err(reject(
                "active_bits",
                format!("must be in 1..={MAX_ACTIVE_BITS}, not {a}"),
            ));
        }
        dimensions(a, s, 1).check(&Spelling::SPACE)?;
        let theta = match spec.threshold {
            Some(theta) => theta,
            None => {
                let noise_bits = theory::noise_bits(DEFAULT_NOISE, a.into());
                theory::threshold_min_error(n.into(), a.into(), s.into(), noise_bits) as u32
            }
        };
        dimensions(a, s, theta).check(&Spelling::SPACE)?;
        let max_false_match = spec.max_false_match.unwrap_or(1e-6);
        if !(max_false_match > 0.0 && max_false_match <= 1.0) {
            return Err(reject(
                "max_false_match",
                format!("must be a probability in (0, 1], not {max_false_match}"),
            ));
        }
        let max_segments = spec.max_segments_per_neuron.unwrap_or(1024);
        if !(1..=MAX_SEGMENTS_LIMIT).contains(&max_segments) {
            return Err(reject(
                "max_segments_per_neuron",
                format!("must be in 1..={MAX_SEGMENTS_LIMIT}, not {max_segments}"),
            ));
        }
        let params = SpaceParams {
            input_size: n,
            active_bits: a,
            synapses_per_pattern: s,
            threshold: theta,
            max_false_match,
            max_segments_per_neuron: max_segments,
            seed,
            encoder,
        };
        // A segment holding a single pattern must meet the target, or no segment ever could.
        let single = params.segment_false_match(s.min(a));
        if single.value() > max_false_match {
            return Err(reject(
                "max_false_match",
                format!(
                    "{max_false_match:e} is below the false-match probability of a single pattern's segment ({:e}); raise it or the threshold",
                    single.value()
                ),
            ));
        }
        Ok(params)
    }

    /// The parameters in which `asked` differs from these, each as `name is STORED, not ASKED`,
    /// in the order the API lists them: what a conflicting re-creation is told.
    pub fn differences(&self, asked: &SpaceParams) -> Vec<String> {
        let encoder = |params: &SpaceParams| match &params.encoder {
            Some(encoder) => serde_json::to_string(encoder.spec()).unwrap_or_default(),
            None => "none".to_owned(),
        };
        let fields: [(&str, String, String); 8] = [
            (
                "input_size",
                self.input_size.to_string(),
                asked.input_size.to_string(),
            ),
            (
                "active_bits",
                self.active_bits.to_string(),
                asked.active_bits.to_string(),
            ),
            (
                "synapses_per_pattern",
                self.synapses_per_pattern.to_string(),
                asked.synapses_per_pattern.to_string(),
            ),
            (
                "threshold",
                self.threshold.to_string(),
                asked.threshold.to_string(),
            ),
            (
                "max_false_match",
                format!("{:e}", self.max_false_match),
                format!("{:e}", asked.max_false_match),
            ),
            (
                "max_segments_per_neuron",
                self.max_segments_per_neuron.to_string(),
                asked.max_segments_per_neuron.to_string(),
            ),
            ("seed", self.seed.to_string(), asked.seed.to_string()),
            ("encoder", encoder(self), encoder(asked)),
        ];
        fields
            .into_iter()
            .filter(|(_, stored, asked)| stored != asked)
            .map(|(name, stored, asked)| format!("{name} is {stored}, not {asked}"))
            .collect()
    }

    /// The false-match probability of a segment with `synapses` synapses for a random input of the
    /// space's nominal size, at the space's threshold.
    pub fn segment_false_match(&self, synapses: u32) -> Probability {
        theory::segment_false_match(
            self.input_size.into(),
            self.active_bits.into(),
            u64::from(synapses).min(self.input_size.into()),
            self.threshold.into(),
        )
    }
}

/// The theory for a space's parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpaceTheory {
    /// One pattern's segment, for a random input of the nominal size.
    pub segment_false_match: Probability,
    /// The largest number of patterns a segment holds within `max_false_match` (the paper's way);
    /// null when there is no limit.
    pub max_patterns_per_segment: Option<u64>,
    /// The chance that a stored pattern misses when 20% of its active bits are replaced.
    pub false_miss_at_20_percent_noise: Probability,
    /// The threshold that minimises false matches plus misses at 20% noise.
    pub threshold_min_error: u64,
    /// The smallest threshold whose single-pattern false-match probability meets
    /// `max_false_match`; null when none does.
    pub threshold_for_target: Option<u64>,
    /// What the threshold means in each encoder field's units (the space report shows it).
    #[serde(skip)]
    pub encoder: Option<EncoderMeaning>,
}

impl SpaceTheory {
    /// Computes the summary: tens of milliseconds at the largest parameters.
    pub fn of(params: &SpaceParams) -> SpaceTheory {
        let (n, a, s, theta) = (
            u64::from(params.input_size),
            u64::from(params.active_bits),
            u64::from(params.synapses_per_pattern),
            u64::from(params.threshold),
        );
        let noise_bits = theory::noise_bits(DEFAULT_NOISE, a);
        SpaceTheory {
            segment_false_match: params.segment_false_match(s.min(a) as u32),
            max_patterns_per_segment: theory::max_patterns_per_segment(
                n,
                a,
                s,
                theta,
                params.max_false_match,
            ),
            false_miss_at_20_percent_noise: theory::false_miss(a, s, noise_bits, theta),
            threshold_min_error: theory::threshold_min_error(n, a, s, noise_bits),
            threshold_for_target: theory::threshold_for_target(n, a, s, params.max_false_match),
            encoder: params.encoder.as_ref().map(|encoder| {
                meaning::of(
                    encoder,
                    params.input_size,
                    params.synapses_per_pattern,
                    params.threshold,
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::limits::{MAX_INPUT_SIZE, MAX_SYNAPSES_PER_PATTERN};

    #[test]
    fn differences_name_each_parameter_that_differs_and_nothing_else() {
        let stored = SpaceParams::new(&SpaceSpec {
            input_size: 2048,
            active_bits: 40,
            ..SpaceSpec::default()
        })
        .unwrap();
        assert!(stored.differences(&stored).is_empty());
        let asked = SpaceParams {
            seed: 7,
            threshold: stored.threshold - 1,
            ..stored.clone()
        };
        assert_eq!(
            stored.differences(&asked),
            [
                format!(
                    "threshold is {}, not {}",
                    stored.threshold,
                    stored.threshold - 1
                ),
                "seed is 0, not 7".to_owned()
            ]
        );
    }

    fn spec(n: u32, a: u32) -> SpaceSpec {
        SpaceSpec {
            input_size: n,
            active_bits: a,
            ..SpaceSpec::default()
        }
    }

    #[test]
    fn defaults_follow_the_theory() {
        let p = SpaceParams::new(&spec(2048, 40)).unwrap();
        assert_eq!(p.synapses_per_pattern, 24);
        assert_eq!(p.threshold, 16, "threshold_min_error at 20% noise (8 bits)");
        assert_eq!(p.max_false_match, 1e-6);
        assert_eq!(p.max_segments_per_neuron, 1024);
        assert_eq!(p.seed, 0);
        let small = SpaceParams::new(&spec(1000, 10)).unwrap();
        assert_eq!(small.synapses_per_pattern, 10, "min(a, 24)");
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let cases: Vec<(&str, SpaceSpec)> = vec![
            ("input_size", spec(0, 1)),
            ("input_size", spec(MAX_INPUT_SIZE as u32 + 1, 1)),
            ("active_bits", spec(1 << 20, MAX_ACTIVE_BITS as u32 + 1)),
            (
                "synapses_per_pattern",
                SpaceSpec {
                    synapses_per_pattern: Some(MAX_SYNAPSES_PER_PATTERN as u32 + 1),
                    ..spec(1 << 20, 2000)
                },
            ),
            ("active_bits", spec(100, 0)),
            ("active_bits", spec(100, 101)),
            (
                "synapses_per_pattern",
                SpaceSpec {
                    synapses_per_pattern: Some(0),
                    ..spec(100, 10)
                },
            ),
            (
                "synapses_per_pattern",
                SpaceSpec {
                    synapses_per_pattern: Some(101),
                    ..spec(100, 10)
                },
            ),
            (
                "threshold",
                SpaceSpec {
                    threshold: Some(11),
                    ..spec(100, 10)
                },
            ),
            (
                "threshold",
                SpaceSpec {
                    threshold: Some(0),
                    ..spec(100, 10)
                },
            ),
            (
                "threshold",
                SpaceSpec {
                    synapses_per_pattern: Some(40),
                    threshold: Some(11),
                    ..spec(100, 10)
                },
            ),
            (
                "max_false_match",
                SpaceSpec {
                    max_false_match: Some(0.0),
                    ..spec(100, 10)
                },
            ),
            (
                "max_false_match",
                SpaceSpec {
                    max_false_match: Some(1.5),
                    ..spec(100, 10)
                },
            ),
            (
                "max_false_match",
                SpaceSpec {
                    max_false_match: Some(f64::NAN),
                    ..spec(100, 10)
                },
            ),
            (
                "max_false_match",
                SpaceSpec {
                    threshold: Some(1),
                    ..spec(100, 10)
                },
            ),
            (
                "max_segments_per_neuron",
                SpaceSpec {
                    max_segments_per_neuron: Some(0),
                    ..spec(100, 10)
                },
            ),
            (
                "seed",
                SpaceSpec {
                    seed: Some(u64::MAX),
                    ..spec(100, 10)
                },
            ),
        ];
        for (field, spec) in cases {
            assert_eq!(
                SpaceParams::new(&spec).unwrap_err().field,
                field,
                "{spec:?}"
            );
        }
    }
}
