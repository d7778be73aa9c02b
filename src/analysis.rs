//! What-if analysis: every quantity of the theory for one set of parameters.
//!
//! `dendrite theory` prints this and `GET /v1/theory` answers it, so both share one definition of
//! the parameters, their validation and the JSON keys (other tools read those keys by name).

use crate::theory::limits::MAX_UNION_STEPS;
use crate::theory::{self, Dimensions, InvalidParameter, Probability, Spelling};
use serde::{Deserialize, Serialize};

/// An analysis as it is asked for: the flags of `dendrite theory` and the query string of
/// `GET /v1/theory` are this one definition, so the two take the same names and defaults.
#[derive(Clone, Debug, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
#[command(allow_negative_numbers = true)]
pub struct Request {
    /// n: bits in the input space.
    #[arg(long)]
    pub n: u64,
    /// a: active bits of an input (of a pattern and of a random query).
    #[arg(long)]
    pub a: u64,
    /// s: synapses a segment samples from one pattern (min(s, a) when a pattern has fewer bits).
    #[arg(long)]
    pub s: u64,
    /// theta: the threshold; a segment matches when at least theta of its synapses are active.
    #[arg(long)]
    pub theta: u64,
    /// M: patterns stored on one segment (its synapses are the union of theirs).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub patterns: u64,
    /// K: segments on one neuron.
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub segments: u64,
    /// v: active bits of a stored pattern replaced by other bits, for the miss probability.
    #[arg(long, conflicts_with = "noise")]
    pub noise_bits: Option<u64>,
    /// v / a: the noise as a fraction of the active bits; v = round(F * a), halves up.
    #[arg(long)]
    pub noise: Option<f64>,
    /// The highest acceptable false-match probability; adds the capacity and threshold advice.
    #[arg(long)]
    pub target: Option<f64>,
}

fn one() -> u64 {
    1
}

impl Request {
    /// The analysis parameters, with the noise fraction turned into a number of bits (no noise
    /// when neither is given).
    pub fn parameters(&self) -> Result<Parameters, InvalidParameter> {
        let noise_bits = match (self.noise_bits, self.noise) {
            (Some(_), Some(_)) => {
                return Err(invalid("noise", "give noise or noise_bits, not both"));
            }
            (Some(bits), None) => bits,
            (None, Some(fraction)) => {
                if !(0.0..=1.0).contains(&fraction) {
                    return Err(invalid(
                        "noise",
                        format!("{fraction} is not a fraction in [0, 1]"),
                    ));
                }
                theory::noise_bits(fraction, self.a)
            }
            (None, None) => 0,
        };
        let parameters = Parameters {
            n: self.n,
            a: self.a,
            s: self.s,
            theta: self.theta,
            patterns: self.patterns,
            segments: self.segments,
            noise_bits,
            target: self.target,
        };
        parameters.validate()?;
        Ok(parameters)
    }
}

/// The parameters of one analysis, in the theory's symbols (printed first in an analysis).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Parameters {
    /// n: bits in the input space.
    pub n: u64,
    /// a: active bits of an input.
    pub a: u64,
    /// s: synapses sampled from one pattern.
    pub s: u64,
    /// theta: the threshold.
    pub theta: u64,
    /// M: patterns stored on one segment.
    pub patterns: u64,
    /// K: segments on one neuron.
    pub segments: u64,
    /// v: active bits of a stored pattern replaced by noise.
    pub noise_bits: u64,
    /// The highest acceptable false-match probability, for capacity and threshold advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidParameter {
    InvalidParameter::new(field, reason)
}

/// The most synapse placements (M · min(s, a)) the exact union model accepts: its cost grows with
/// both, and at this bound it stays under about half a second on a slow core (the HTTP endpoint
/// must not be a way to burn a server's CPU).
pub const MAX_UNION_PLACEMENTS: u64 = 50_000;

/// The most terms (one logarithm or one ratio each) the closed-form quantities of an analysis may
/// sum, counted before any is computed by [`Parameters::worst_case_terms`]. An analysis at this
/// bound takes about a second on a slow core; ordinary ones take a few thousand terms.
pub const MAX_ANALYSIS_TERMS: u64 = 60_000_000;

/// The most evaluations of the union model the capacity search makes: doubling `m` until the
/// union fails, then bisecting; `m` never needs more than 2^40 here (at n = 2^24 and one synapse
/// a pattern, every bit is covered after about 2^28 patterns).
const CAPACITY_EVALUATIONS: u64 = 2 * 40;

impl Parameters {
    /// Checks the parameters against each other; the first problem found is named.
    pub fn validate(&self) -> Result<(), InvalidParameter> {
        let dimensions = Dimensions {
            n: self.n,
            a: self.a,
            s: self.s,
            theta: self.theta,
        };
        dimensions.check(&Spelling::LETTERS)?;
        for (name, value) in [("patterns", self.patterns), ("segments", self.segments)] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        let placements = self.patterns.saturating_mul(self.s.min(self.a));
        if placements > MAX_UNION_PLACEMENTS {
            return Err(invalid(
                "patterns",
                format!(
                    "patterns × min(s, a) is {placements}, more than {MAX_UNION_PLACEMENTS}: the exact union model would take too long"
                ),
            ));
        }
        if self.noise_bits > self.a {
            return Err(invalid(
                "noise_bits",
                format!("{} exceeds a = {}", self.noise_bits, self.a),
            ));
        }
        if let Some(target) = self.target
            && !(target > 0.0 && target <= 1.0)
        {
            return Err(invalid("target", "must be a probability in (0, 1]"));
        }
        let terms = self.worst_case_terms();
        if terms > MAX_ANALYSIS_TERMS {
            // Within the other bounds only the capacity search grows past the budget (it walks
            // the union up to every bit, about a terms each time): a test pins this.
            return Err(invalid(
                "target",
                format!(
                    "with a target this analysis could sum {terms} terms, more than {MAX_ANALYSIS_TERMS}: drop target (the capacity search) or use a smaller a"
                ),
            ));
        }
        Ok(())
    }

    /// An upper bound on the terms the closed-form quantities sum: each hypergeometric tail
    /// costs about three terms per overlap of its smaller side (its first term's product, then
    /// the ratios), C(n, a) one per factor. The exact union model counts its own steps. Only
    /// sizes that the other checks have already bounded are multiplied, so nothing overflows.
    pub fn worst_case_terms(&self) -> u64 {
        let (n, a, s) = (self.n, self.a, self.s);
        let one_pattern = s.min(a);
        let tail = |smaller: u64| 3 * smaller;
        let union_synapses = n.min(self.patterns * one_pattern);
        let closed_forms = a.min(n - a) // log10 C(n, a)
            + tail(one_pattern) // one segment
            + tail(one_pattern.min(self.noise_bits)) // the miss
            + tail(union_synapses.min(a)) // the union, the paper's way
            + s * (tail(one_pattern) + tail(one_pattern.min(self.noise_bits))); // best threshold
        let advice = match self.target {
            None => 0,
            // The threshold for the target, then the capacity search: a segment on every bit,
            // then unions of up to every bit.
            Some(_) => s * tail(one_pattern) + (1 + CAPACITY_EVALUATIONS) * tail(a.min(n)),
        };
        closed_forms + advice
    }
}

/// Every quantity of the theory for one [`Parameters`], with the keys the CLI prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    #[serde(flatten)]
    pub parameters: Parameters,
    /// log10 C(n, a).
    pub log10_distinct_patterns: f64,
    /// NP Eq. 4 for one pattern's min(s, a) synapses.
    pub segment_false_match: Probability,
    /// E|X| after M patterns.
    pub union_expected_synapses: f64,
    /// NP Eq. 4 at E|X| rounded halves up (the paper's way).
    pub union_false_match: Probability,
    /// NP Eq. 4 averaged over the distribution of |X|.
    pub union_false_match_exact: Probability,
    /// K segments, each the M-union the paper's way.
    pub neuron_false_match: Probability,
    /// NP Eqs. 5/6 with v of the a bits replaced.
    pub false_miss: Probability,
    /// Largest M with union_false_match <= target; null when no M exceeds it. Only with a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_patterns_per_segment: Option<Option<u64>>,
    /// theta in 1..=s minimising P_fp(s) + P_fn(v).
    pub threshold_min_error: u64,
    /// Smallest theta with P_fp(s) <= target; null when none does. Only with a target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_for_target: Option<Option<u64>>,
}

impl Analysis {
    /// Validates the parameters, then computes every quantity.
    pub fn of(p: &Parameters) -> Result<Analysis, InvalidParameter> {
        p.validate()?;
        let synapses = p.s.min(p.a);
        let union = theory::union_false_match(p.n, p.a, p.s, p.theta, p.patterns);
        let union_exact = theory::union_false_match_exact_within(
            p.n,
            p.a,
            p.s,
            p.theta,
            p.patterns,
            MAX_UNION_STEPS,
        )
        .ok_or_else(|| {
            invalid(
                "patterns",
                format!(
                    "the exact union model needs more than {MAX_UNION_STEPS} steps for these parameters; use fewer patterns"
                ),
            )
        })?;
        Ok(Analysis {
            parameters: *p,
            log10_distinct_patterns: theory::log10_distinct_patterns(p.n, p.a),
            segment_false_match: theory::segment_false_match(p.n, p.a, synapses, p.theta),
            union_expected_synapses: theory::union_expected_synapses(p.n, synapses, p.patterns),
            union_false_match: union,
            union_false_match_exact: union_exact,
            neuron_false_match: theory::neuron_false_match(union, p.segments),
            false_miss: theory::false_miss(p.a, p.s, p.noise_bits, p.theta),
            max_patterns_per_segment: p
                .target
                .map(|t| theory::max_patterns_per_segment(p.n, p.a, p.s, p.theta, t)),
            threshold_min_error: theory::threshold_min_error(p.n, p.a, p.s, p.noise_bits),
            threshold_for_target: p
                .target
                .map(|t| theory::threshold_for_target(p.n, p.a, p.s, t)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::limits::{MAX_INPUT_SIZE, MAX_SYNAPSES_PER_PATTERN};

    fn example() -> Parameters {
        Parameters {
            n: 2048,
            a: 40,
            s: 24,
            theta: 12,
            patterns: 5,
            segments: 20,
            noise_bits: 8,
            target: Some(1e-6),
        }
    }

    #[test]
    fn each_inconsistent_parameter_is_named() {
        type Spoil = fn(&mut Parameters);
        let cases: [(&str, Spoil); 15] = [
            ("patterns", |p| p.patterns = 2_084),
            ("n", |p| p.n = MAX_INPUT_SIZE + 1),
            ("target", |p| (p.n, p.a) = (1 << 24, 1 << 20)),
            ("s", |p| p.s = MAX_SYNAPSES_PER_PATTERN + 1),
            ("n", |p| p.n = 0),
            ("a", |p| p.a = 3000),
            ("s", |p| p.s = 3000),
            ("theta", |p| p.theta = 25),
            ("theta", |p| p.theta = 0),
            // Within s, but above a: no stored pattern of a bits could reach it.
            ("theta", |p| (p.a, p.noise_bits) = (10, 0)),
            ("patterns", |p| p.patterns = 0),
            ("segments", |p| p.segments = 0),
            ("noise_bits", |p| p.noise_bits = 41),
            ("target", |p| p.target = Some(0.0)),
            ("target", |p| p.target = Some(1.5)),
        ];
        for (name, spoil) in cases {
            let mut p = example();
            spoil(&mut p);
            assert_eq!(p.validate().unwrap_err().field, name);
            assert!(Analysis::of(&p).is_err());
        }
    }

    #[test]
    fn only_the_capacity_search_can_exceed_the_term_budget() {
        let costliest = Parameters {
            n: MAX_INPUT_SIZE,
            a: MAX_INPUT_SIZE / 2,
            s: MAX_SYNAPSES_PER_PATTERN,
            theta: 1,
            patterns: MAX_UNION_PLACEMENTS / MAX_SYNAPSES_PER_PATTERN,
            segments: u64::MAX,
            noise_bits: MAX_INPUT_SIZE / 2,
            target: None,
        };
        assert!(costliest.worst_case_terms() <= MAX_ANALYSIS_TERMS);
        let with_target = Parameters {
            target: Some(1e-6),
            ..costliest
        };
        assert_eq!(with_target.validate().unwrap_err().field, "target");
    }

    #[test]
    fn large_active_bits_are_analysed_when_the_cost_allows() {
        // What an application with a million-bit input and 2% sparsity asks.
        let wide = Parameters {
            n: 1_000_000,
            a: 20_000,
            s: 1024,
            theta: 200,
            patterns: 10,
            segments: 100,
            noise_bits: 4_000,
            target: Some(1e-9),
        };
        let analysis = Analysis::of(&wide).unwrap();
        assert!(analysis.segment_false_match.ln() < 0.0);
        assert!(analysis.max_patterns_per_segment.unwrap().is_some());
    }

    fn request(noise_bits: Option<u64>, noise: Option<f64>) -> Request {
        Request {
            n: 2048,
            a: 42,
            s: 24,
            theta: 12,
            patterns: 1,
            segments: 1,
            noise_bits,
            noise,
            target: None,
        }
    }

    #[test]
    fn a_noise_fraction_becomes_bits_rounded_halves_up() {
        let bits = |noise| request(None, Some(noise)).parameters().unwrap().noise_bits;
        assert_eq!(bits(0.25), 11, "10.5 bits");
        assert_eq!(bits(0.2), 8, "8.4 bits");
        assert_eq!(request(Some(5), None).parameters().unwrap().noise_bits, 5);
        assert_eq!(request(None, None).parameters().unwrap().noise_bits, 0);
    }

    #[test]
    fn noise_given_twice_or_outside_a_fraction_is_refused_naming_noise() {
        for spoiled in [request(Some(8), Some(0.2)), request(None, Some(1.5))] {
            assert_eq!(spoiled.parameters().unwrap_err().field, "noise");
        }
    }

    #[test]
    fn the_query_string_takes_the_cli_defaults() {
        let request: Request = serde_json::from_value(serde_json::json!({
            "n": 2048, "a": 40, "s": 24, "theta": 12, "noise": 0.2
        }))
        .unwrap();
        let parameters = request.parameters().unwrap();
        assert_eq!((parameters.patterns, parameters.segments), (1, 1));
        assert_eq!(parameters.noise_bits, 8);
    }

    #[test]
    fn an_exact_union_model_past_its_step_budget_is_refused_naming_patterns() {
        let costly = Parameters {
            n: 65_536,
            a: 40,
            s: 40,
            patterns: 1_250,
            noise_bits: 0,
            ..example()
        };
        assert_eq!(costly.validate(), Ok(()), "within the placement bound");
        assert_eq!(Analysis::of(&costly).unwrap_err().field, "patterns");
    }

    #[test]
    fn the_target_keys_appear_only_with_a_target() {
        let with = serde_json::to_value(Analysis::of(&example()).unwrap()).unwrap();
        assert_eq!(with["max_patterns_per_segment"], 5);
        assert_eq!(with["threshold_for_target"], 7);
        assert_eq!(with["threshold_min_error"], 16);
        assert_eq!(with["false_miss"]["log10"], serde_json::Value::Null);
        let without = serde_json::to_value(
            Analysis::of(&Parameters {
                target: None,
                ..example()
            })
            .unwrap(),
        )
        .unwrap();
        for key in ["target", "max_patterns_per_segment", "threshold_for_target"] {
            assert!(without.get(key).is_none(), "{key}");
        }
    }
}
