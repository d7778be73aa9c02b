//! The theory of Ahmad and Hawkins (2016): exact error probabilities of dendritic segments that
//! learn sparse patterns.
//!
//! Everything dendrite reports about how far an answer can be trusted comes from here: the chance
//! that a random input falsely matches a segment (NP Eq. 4), the chance that noise makes a stored
//! pattern miss (NP Eqs. 5/6), how these combine over many segments and how they grow as a segment
//! learns a union of patterns. "NP" cites Ahmad & Hawkins (2016), "How do neurons operate on
//! sparse distributed representations? A mathematical theory of sparsity, neurons and active
//! dendrites"; "SP" their earlier "Properties of sparse distributed representations and their
//! application to hierarchical temporal memory" (2015). The module is pure arithmetic on
//! counts (std only) so that the engine, the CLI and the HTTP layer share one implementation.
//!
//! Symbols follow the paper: `n` input size, `a` active bits of an input, `s` synapses sampled from
//! one pattern, `theta` the threshold, `b` an overlap, `m` patterns on a segment, `k` segments.
//! A segment built from one pattern holds min(s, a) synapses: a pattern cannot give more synapses
//! than it has active bits.

mod dimensions;
mod hypergeometric;
mod probability;

pub use dimensions::{Dimensions, Spelling};
pub use hypergeometric::{Hypergeometric, ln_binomial};
pub use probability::{LogNumber, LogSum, Probability};

use std::f64::consts::LN_10;

/// The largest parameters dendrite computes, so that every answer is bounded before it starts:
/// the tails cost O(min(s, a)) terms, the threshold advisers O(s²), the capacity search
/// O(a · log m). At these bounds a space's whole theory takes tens of milliseconds, and an
/// analysis with the exact union model at most a few hundred (its own work is counted: see
/// [`union_false_match_exact_within`]).
pub mod limits {
    /// n: bits in the input space, 2^24.
    pub const MAX_INPUT_SIZE: u64 = 1 << 24;
    /// a: active bits of an input.
    pub const MAX_ACTIVE_BITS: u64 = 16_384;
    /// s: synapses sampled from one pattern.
    pub const MAX_SYNAPSES_PER_PATTERN: u64 = 1_024;
    /// Steps of the exact union model (about 13 ns each on a 2026 server core).
    pub const MAX_UNION_STEPS: u64 = 20_000_000;
}

/// A parameter that makes no sense, with the reason: the one error of every parameter check (a
/// space's, an analysis's), so the CLI and the API name the parameter at fault the same way.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidParameter {
    /// The parameter's name, as the JSON body, the query string and the CLI flag spell it.
    pub field: &'static str,
    /// Why it is rejected.
    pub reason: String,
}

impl std::fmt::Display for InvalidParameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidParameter {}

impl InvalidParameter {
    pub fn new(field: &'static str, reason: impl Into<String>) -> InvalidParameter {
        InvalidParameter {
            field,
            reason: reason.into(),
        }
    }
}

/// v: the bits of noise that a fraction of `a` active bits stands for, round(fraction · a) with
/// halves rounded up (20% of 42 bits is 8.4, so 8; 25% of 42 is 10.5, so 11). The one home of
/// this rule: a space's default threshold, its reports, the CLI, `/v1/theory` and the benchmark
/// workload all turn fractions into bits here.
pub fn noise_bits(fraction: f64, a: u64) -> u64 {
    (fraction * a as f64 + 0.5).floor() as u64
}

/// The largest `x` in `good..bad` for which `holds(x)`, given that `holds(good)`, not
/// `holds(bad)`, and that `holds` is true up to some point and false after it. Bisection: about
/// log2(bad − good) calls.
pub fn largest_satisfying(good: u64, bad: u64, holds: impl Fn(u64) -> bool) -> u64 {
    let (mut good, mut bad) = (good, bad);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if holds(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// The Wilson score interval for a rate of `events` in `trials`, at the two-sided confidence
/// whose normal quantile is `z` (3.2905 for 99.9%): where the true rate lies, given what was seen.
/// Unlike the plain normal interval it stays inside [0, 1] and is sensible at 0 events.
///
/// # Panics
/// When `events > trials` or `trials` is 0.
pub fn wilson_interval(events: u64, trials: u64, z: f64) -> (f64, f64) {
    assert!(
        trials > 0 && events <= trials,
        "{events} events in {trials} trials"
    );
    let (n, p) = (trials as f64, events as f64 / trials as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 (or all) events the bound is exactly 0 (or 1); the formula's rounding would leave a
    // trace above 0 that a prediction of exactly 0 falls below.
    let low = if events == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if events == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// log10 of the number of distinct patterns of `a` active bits out of `n`: log10 C(n, a) (SP Eq. 1).
pub fn log10_distinct_patterns(n: u64, a: u64) -> f64 {
    ln_binomial(n, a) / LN_10
}

/// The probability that a uniformly random input of `a` active bits out of `n` reaches `theta` on a
/// segment of `synapses` synapses (NP Eq. 4): the segment's false-match probability.
///
/// # Panics
/// When `synapses` or `a` exceed `n`.
pub fn segment_false_match(n: u64, a: u64, synapses: u64, theta: u64) -> Probability {
    Hypergeometric::new(n, synapses, a).upper_tail(theta)
}

/// The p-value of an observed overlap: the probability that a uniformly random input of `a` active
/// bits out of `n` overlaps a segment of `synapses` synapses in `overlap` bits or more.
///
/// # Panics
/// When `synapses` or `a` exceed `n`.
pub fn overlap_p_value(n: u64, a: u64, synapses: u64, overlap: u64) -> Probability {
    segment_false_match(n, a, synapses, overlap)
}

/// The probability that a segment holding min(s, a) synapses to a stored pattern of `a` active bits
/// misses the pattern once `noise_bits` of its active bits are replaced by other bits (NP Eqs. 5/6):
/// at least min(s, a) − theta + 1 synapses lose their input. Exactly zero when
/// `noise_bits <= min(s, a) − theta`; n drops out.
///
/// # Panics
/// When `noise_bits > a`.
pub fn false_miss(a: u64, s: u64, noise_bits: u64, theta: u64) -> Probability {
    let synapses = s.min(a);
    let lost_to_miss = (synapses + 1).saturating_sub(theta);
    Hypergeometric::new(a, synapses, noise_bits).upper_tail(lost_to_miss)
}

/// The probability that a random input falsely matches a neuron with `k` segments that each have
/// false-match probability `segment` (NP Eq. 8): 1 − (1 − p)^k.
pub fn neuron_false_match(segment: Probability, k: u64) -> Probability {
    segment.any_of_k(k)
}

/// The probability that a random input falsely matches at least one of segments with different
/// false-match probabilities: 1 − prod(1 − p_i) (NP Eq. 8), stable for tiny p_i.
pub fn neuron_false_match_of(segments: impl IntoIterator<Item = Probability>) -> Probability {
    Probability::any_of(segments)
}

/// The expected number of distinct synapses on a segment after `m` patterns of min(s, n) synapses
/// each (NP Eqs. 11, 13): E|X| = n · (1 − (1 − s/n)^m).
pub fn union_expected_synapses(n: u64, s: u64, m: u64) -> f64 {
    let s = s.min(n) as f64;
    let n = n as f64;
    -n * ((m as f64) * (-s / n).ln_1p()).exp_m1()
}

/// The false-match probability of a segment that learned `m` patterns, the paper's way
/// (NP §3.3): equation 3 at E|X| rounded to the nearest integer, halves up.
///
/// # Panics
/// When `a` exceeds `n`.
pub fn union_false_match(n: u64, a: u64, s: u64, theta: u64, m: u64) -> Probability {
    let synapses = union_expected_synapses(n, s.min(a), m);
    let rounded = ((synapses + 0.5).floor() as u64).min(n);
    segment_false_match(n, a, rounded, theta)
}

/// The false-match probability of a segment that learned `m` random patterns, exactly under the
/// model: equation 3 averaged over the distribution of |X|.
///
/// |X| is a Markov chain: each pattern adds a uniformly random set of min(s, a) bits, of which
/// Hypergeometric(n, n − |X|, s) are new. The chain's distribution is carried exactly (f64 weights
/// summing to 1), and the average is taken in log space so that tiny tails stay exact.
///
/// # Panics
/// When `a` exceeds `n`.
pub fn union_false_match_exact(n: u64, a: u64, s: u64, theta: u64, m: u64) -> Probability {
    union_false_match_exact_within(n, a, s, theta, m, u64::MAX)
        .expect("an unlimited budget is never exceeded")
}

/// [`union_false_match_exact`] with a budget of `steps` (one step: one term of one state's
/// transition): `None` once the chain needs more. Its cost follows the spread of |X| and of the
/// transitions, which no simple formula of the parameters bounds, so a service that must answer
/// within a deadline counts the work instead of guessing it.
///
/// # Panics
/// When `a` exceeds `n`.
pub fn union_false_match_exact_within(
    n: u64,
    a: u64,
    s: u64,
    theta: u64,
    m: u64,
    steps: u64,
) -> Option<Probability> {
    let per_pattern = s.min(a).min(n);
    if m == 0 {
        return Some(segment_false_match(n, a, 0, theta));
    }
    let mut budget = steps;
    // weights[i] = P(|X| = first + i) after the patterns seen so far; only the states that carry
    // weight are kept, so the cost follows the spread of |X|, not n.
    let (mut first, mut weights) = (per_pattern, vec![1.0f64]);
    for _ in 1..m {
        let last = (first + weights.len() as u64 - 1 + per_pattern).min(n);
        let mut next = vec![0.0f64; (last - first + 1) as usize];
        for (i, &w) in weights.iter().enumerate() {
            // States this unlikely cannot move the average by one part in 1e-300.
            if w < 1e-300 {
                continue;
            }
            let x = first + i as u64;
            let fresh = Hypergeometric::new(n, n - x, per_pattern);
            budget = budget.checked_sub(fresh.max_overlap() - fresh.min_overlap() + 1)?;
            let offset = (x + fresh.min_overlap() - first) as usize;
            for (j, p) in fresh.pmf().into_iter().enumerate() {
                next[offset + j] += w * p;
            }
        }
        let skip = next.iter().take_while(|&&w| w < 1e-300).count();
        let keep = next.len() - next.iter().rev().take_while(|&&w| w < 1e-300).count();
        first += skip as u64;
        weights = next[skip..keep].to_vec();
    }
    let mut average = LogSum::default();
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            let x = first + i as u64;
            average.add(w.ln() + segment_false_match(n, a, x, theta).ln());
        }
    }
    Some(Probability::from_ln(average.ln()))
}

/// The capacity of a segment: the largest number of patterns `m` whose union false-match
/// probability (the paper's way) stays at or under `target`; `None` when no number of patterns ever
/// exceeds it (a segment on every input bit still meets the target).
///
/// # Panics
/// When `a` exceeds `n`.
pub fn max_patterns_per_segment(n: u64, a: u64, s: u64, theta: u64, target: f64) -> Option<u64> {
    let ln_target = target.ln();
    let fits = |m: u64| union_false_match(n, a, s, theta, m).ln() <= ln_target;
    if segment_false_match(n, a, n, theta).ln() <= ln_target {
        return None;
    }
    // The union probability grows with m (more synapses can only add overlap): find the first m
    // that does not fit by doubling, then bisect.
    let (mut fits_up_to, mut fails_at) = (0u64, 1u64);
    while fits(fails_at) {
        fits_up_to = fails_at;
        fails_at *= 2;
    }
    Some(largest_satisfying(fits_up_to, fails_at, fits))
}

/// The threshold in 1..=s that minimises P_fp + P_fn for one pattern's segment under `noise_bits`
/// of noise; ties go to the larger threshold (fewer false matches for the same total).
///
/// # Panics
/// When `a` exceeds `n`, `noise_bits` exceeds `a` or `s` is 0.
pub fn threshold_min_error(n: u64, a: u64, s: u64, noise_bits: u64) -> u64 {
    assert!(s > 0, "s must be positive");
    let synapses = s.min(a);
    let total_error = |theta: u64| {
        let mut sum = LogSum::default();
        sum.add(segment_false_match(n, a, synapses, theta).ln());
        sum.add(false_miss(a, s, noise_bits, theta).ln());
        sum.ln()
    };
    let mut best = (1, total_error(1));
    for theta in 2..=s {
        let error = total_error(theta);
        if error <= best.1 {
            best = (theta, error);
        }
    }
    best.0
}

/// The smallest threshold in 1..=s whose single-pattern false-match probability is at or under
/// `target`; `None` when even theta = s does not reach it.
///
/// # Panics
/// When `a` exceeds `n`.
pub fn threshold_for_target(n: u64, a: u64, s: u64, target: f64) -> Option<u64> {
    let synapses = s.min(a);
    let ln_target = target.ln();
    (1..=s).find(|&theta| segment_false_match(n, a, synapses, theta).ln() <= ln_target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_fractions_round_to_the_nearest_bit_with_halves_up() {
        assert_eq!(noise_bits(0.2, 40), 8);
        assert_eq!(noise_bits(0.2, 42), 8, "8.4");
        assert_eq!(noise_bits(0.25, 42), 11, "10.5 rounds up");
        assert_eq!(noise_bits(0.1, 5), 1, "0.5 rounds up");
        assert_eq!(noise_bits(0.0, 40), 0);
        assert_eq!(noise_bits(1.0, 40), 40);
    }

    #[test]
    fn the_wilson_interval_matches_published_values_and_holds_its_events() {
        // 95% (z = 1.96) for 10 of 100: 0.0552 to 0.1744 (Newcombe 1998, method 3).
        let (low, high) = wilson_interval(10, 100, 1.959964);
        assert!(
            (low - 0.0552).abs() < 5e-4 && (high - 0.1744).abs() < 5e-4,
            "{low} {high}"
        );
        let (low, high) = wilson_interval(0, 1000, 3.2905);
        assert_eq!(low, 0.0);
        assert!(high > 0.0 && high < 0.02, "{high}");
        let (low, high) = wilson_interval(1000, 1000, 3.2905);
        assert!(low > 0.98 && high == 1.0);
    }

    #[test]
    fn bisection_finds_what_a_linear_scan_finds() {
        for good in 0..20u64 {
            for bad in good + 1..40 {
                for boundary in good..bad {
                    let holds = |x: u64| x <= boundary;
                    let scanned = (good..bad).rev().find(|&x| holds(x)).unwrap();
                    assert_eq!(largest_satisfying(good, bad, holds), scanned);
                }
            }
        }
    }
}
