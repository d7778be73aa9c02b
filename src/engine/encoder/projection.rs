//! Dense inputs into sparse codes: a seeded random projection to `n` outputs, of which the
//! strongest `a_f` become the field's bits.
//!
//! For vectors, each output sums a few inputs with random signs (a sparse sign projection, as
//! FlyHash's sparse binary one; signs keep a shared bias from favouring the same outputs). Two
//! vectors with cosine similarity `rho` then give outputs correlated by about `rho`, so their top
//! `a_f` share about `a_f * Phi2(t, t; rho) / p` bits (`p = a_f / n`, `t = Phi^-1(1 - p)`), and
//! unrelated vectors share what random codes do.
//!
//! For text, each word is a seeded near-Gaussian vector over the `n` outputs and a text is their
//! sum (a SimHash document code with continuous weights, so its ranking has no ties).
//!
//! Every sum is of f64 values in a fixed order with no fused operations, and the word weights
//! are exact dyadic numbers, so every machine ranks alike and codes match everywhere.

use super::hash;
use crate::rng::Rng;

/// How many inputs each output of a vector field reads: enough that every output's correlation
/// stays close to the inputs' cosine (the tests hold the overlap curve to the formula), few
/// enough that a 384-dimension vector projects to 2048 outputs in microseconds.
pub fn reads_per_output(dimensions: u32) -> u32 {
    dimensions.min(16)
}

/// A sparse sign projection from `dimensions` inputs to `outputs` outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    dimensions: u32,
    reads: u32,
    /// For each output, `reads` entries: the index of the input it adds, or that index plus
    /// `dimensions` when it subtracts it. [`Projection::apply`] reads them from the input
    /// followed by its negation, so no branch depends on a sign (a mispredicted branch per tap
    /// made a 384-dimension projection ten times slower).
    taps: Vec<u32>,
}

impl Projection {
    pub fn new(field_key: u64, dimensions: u32, outputs: u32) -> Projection {
        let reads = reads_per_output(dimensions);
        let mut taps = Vec::with_capacity(outputs as usize * reads as usize);
        for output in 0..outputs {
            let mut rng = Rng::new(hash::combine(field_key, u64::from(output)));
            let inputs = rng.distinct_below(dimensions, reads);
            let signs = rng.next_u64();
            taps.extend(
                inputs
                    .iter()
                    .enumerate()
                    .map(|(i, &input)| input + dimensions * ((signs >> (i % 64)) & 1) as u32),
            );
        }
        Projection {
            dimensions,
            reads,
            taps,
        }
    }

    pub fn dimensions(&self) -> u32 {
        self.dimensions
    }

    pub fn outputs(&self) -> u32 {
        (self.taps.len() / self.reads as usize) as u32
    }

    /// Bytes the projection holds.
    pub fn memory_bytes(&self) -> usize {
        self.taps.len() * std::mem::size_of::<u32>()
    }

    /// The outputs for `input` (already centred), one per output.
    pub fn apply(&self, input: &[f64]) -> Vec<f64> {
        debug_assert_eq!(input.len(), self.dimensions as usize);
        let signed: Vec<f64> = input
            .iter()
            .copied()
            .chain(input.iter().map(|x| -x))
            .collect();
        self.taps
            .chunks_exact(self.reads as usize)
            .map(|taps| {
                taps.iter()
                    .fold(0.0, |sum, &tap| sum + signed[tap as usize])
            })
            .collect()
    }
}

/// A word's weight on each of `outputs` outputs: a centred binomial of 64 fair coins (variance
/// 16) smoothed by a uniform of 2^-52 steps, so weights are continuous, near-Gaussian and exact.
pub fn word_weights(word_key: u64, outputs: u32, into: &mut [f64]) {
    let mut rng = Rng::new(word_key);
    for weight in into.iter_mut().take(outputs as usize) {
        let coins = f64::from(rng.next_u64().count_ones()) - 32.0;
        let smooth = (rng.next_u64() >> 12) as f64 / (1u64 << 52) as f64 - 0.5;
        *weight += coins + smooth;
    }
}

/// The words of a text: maximal runs of Unicode letters and digits, lower-cased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The outputs in order of strength: highest first, ties to the lower index. `scores` must be
/// free of NaN. Only the first `enough` positions are returned.
pub fn strongest(scores: &[f64], enough: usize) -> Vec<u32> {
    let enough = enough.min(scores.len());
    if enough == 0 {
        return Vec::new();
    }
    // The `enough`-th highest score, found on a copy of the values (comparing values directly
    // is several times faster than comparing indices through the scores).
    let mut values = scores.to_vec();
    let (_, &mut cut, _) = values.select_nth_unstable_by(enough - 1, |x, y| y.total_cmp(x));
    // Everything above the cut, then as many at the cut as fit, in index order.
    let mut chosen: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| scores[i as usize].total_cmp(&cut).is_gt())
        .collect();
    let room = enough - chosen.len();
    chosen.extend(
        (0..scores.len() as u32)
            .filter(|&i| scores[i as usize].total_cmp(&cut).is_eq())
            .take(room),
    );
    chosen.sort_unstable_by(|&x, &y| {
        scores[y as usize]
            .total_cmp(&scores[x as usize])
            .then(x.cmp(&y))
    });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_orders_by_score_then_index() {
        let scores = [0.5, 2.0, 2.0, -1.0, 3.0];
        assert_eq!(strongest(&scores, 3), [4, 1, 2]);
        assert_eq!(strongest(&scores, 9), [4, 1, 2, 0, 3]);
        assert_eq!(strongest(&scores, 0), Vec::<u32>::new());
    }

    #[test]
    fn strongest_agrees_with_a_full_sort_even_among_many_ties() {
        let mut rng = Rng::new(4);
        for round in 0..200 {
            let len = 1 + rng.below(300) as usize;
            // Few distinct values, so the cut often falls inside a run of ties.
            let distinct = 1 + round % 12;
            let scores: Vec<f64> = (0..len).map(|_| rng.below(distinct) as f64 - 3.0).collect();
            let mut plain: Vec<u32> = (0..len as u32).collect();
            plain.sort_by(|&x, &y| {
                scores[y as usize]
                    .total_cmp(&scores[x as usize])
                    .then(x.cmp(&y))
            });
            let enough = rng.below(len as u64 + 2) as usize;
            plain.truncate(enough);
            assert_eq!(strongest(&scores, enough), plain, "{scores:?} {enough}");
        }
    }

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        let found: Vec<String> = words("The sky, is  BLUE-ish; Überall 42!").collect();
        assert_eq!(found, ["the", "sky", "is", "blue", "ish", "überall", "42"]);
    }

    #[test]
    fn word_weights_are_centred_with_variance_near_16() {
        let mut weights = vec![0.0; 20_000];
        word_weights(1, 20_000, &mut weights);
        let mean = weights.iter().sum::<f64>() / 20_000.0;
        let variance = weights.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / 20_000.0;
        // The mean's standard error is 0.03; the variance's about 0.16.
        assert!(mean.abs() < 0.15, "{mean}");
        assert!((variance - 16.08).abs() < 0.8, "{variance}");
    }

    #[test]
    fn a_projection_reads_distinct_inputs_with_signs() {
        let projection = Projection::new(9, 384, 2048);
        assert_eq!(projection.taps.len(), 2048 * 16);
        assert_eq!(projection.outputs(), 2048);
        // One input reaches about 2048 * 16 / 384 = 85 outputs, half of them subtracting it.
        let one_hot: Vec<f64> = (0..384).map(|i| if i == 5 { 1.0 } else { 0.0 }).collect();
        let out = projection.apply(&one_hot);
        assert!(out.iter().all(|v| [-1.0, 0.0, 1.0].contains(v)));
        let (added, subtracted) = (
            out.iter().filter(|&&v| v == 1.0).count(),
            out.iter().filter(|&&v| v == -1.0).count(),
        );
        assert!(
            (55..120).contains(&(added + subtracted)),
            "{added} {subtracted}"
        );
        assert!(added > 20 && subtracted > 20, "{added} {subtracted}");
        let small = Projection::new(9, 3, 4);
        assert_eq!(small.reads, 3);
    }
}
