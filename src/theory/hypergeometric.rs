//! Binomial coefficients and hypergeometric tails in log space, exact to a few ulps for any size.
//!
//! Every probability dendrite reports is a tail of a hypergeometric distribution: how many of a
//! fixed set of `successes` items a uniformly random draw of `draws` items out of `population` hits.
//! Differences of log-gamma values lose about 1e-9 of relative precision once the population
//! reaches a million (ln Γ(10^6) ≈ 1.3e7), so terms are built instead from products of about
//! min(successes, draws) ratios of exact integers, each rounded once; consecutive terms of a tail
//! come from the ratio recurrence P(b+1)/P(b), and the tail is summed relative to its first term
//! with rescaling, so neither overflow nor underflow can occur.

use super::Probability;

/// ln C(n, k); -inf when k > n.
pub fn ln_binomial(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    let k = k.min(n - k);
    // C(n, k) = prod_{i<k} (n - i) / (k - i), each factor an exactly rounded ratio.
    let mut sum = CompensatedSum::default();
    for i in 0..k {
        sum.add(((n - i) as f64 / (k - i) as f64).ln());
    }
    sum.total()
}

/// The distribution of the overlap B between a fixed set of `successes` items and a uniformly
/// random draw of `draws` items out of `population`.
///
/// The distribution is symmetric in `successes` and `draws`; it is stored with the smaller of the
/// two as `small` so that every term costs O(small) operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypergeometric {
    population: u64,
    small: u64,
    large: u64,
}

impl Hypergeometric {
    /// # Panics
    /// When `successes` or `draws` exceed `population`: such a draw does not exist.
    pub fn new(population: u64, successes: u64, draws: u64) -> Hypergeometric {
        assert!(
            successes <= population && draws <= population,
            "hypergeometric parameters out of range: population {population}, successes {successes}, draws {draws}"
        );
        Hypergeometric {
            population,
            small: successes.min(draws),
            large: successes.max(draws),
        }
    }

    /// The smallest overlap with a non-zero probability.
    pub fn min_overlap(&self) -> u64 {
        (self.small + self.large).saturating_sub(self.population)
    }

    /// The largest overlap with a non-zero probability.
    pub fn max_overlap(&self) -> u64 {
        self.small
    }

    /// ln P(B = b); -inf outside the support.
    pub fn ln_pmf(&self, b: u64) -> f64 {
        if b < self.min_overlap() || b > self.max_overlap() {
            return f64::NEG_INFINITY;
        }
        let (n, x, a) = (self.population, self.small, self.large);
        // P(B = b) = C(x, b) · P(b given items all drawn) · P(the other x − b all missed):
        //   C(x, b) · prod_{i<b} (a − i)/(n − i) · prod_{j<x−b} (n − a − j)/(n − b − j).
        let mut sum = CompensatedSum::default();
        sum.add(ln_binomial(x, b));
        for i in 0..b {
            sum.add(((a - i) as f64 / (n - i) as f64).ln());
        }
        for j in 0..x - b {
            sum.add(((n - a - j) as f64 / (n - b - j) as f64).ln());
        }
        sum.total()
    }

    /// P(B >= from): the upper tail, summed term by term relative to its first term.
    pub fn upper_tail(&self, from: u64) -> Probability {
        let start = from.max(self.min_overlap());
        if start > self.max_overlap() {
            return Probability::ZERO;
        }
        if start == self.min_overlap() {
            return Probability::ONE;
        }
        let (n, x, a) = (self.population, self.small, self.large);
        let mut ln_scale = self.ln_pmf(start);
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        for b in start..x {
            // P(b + 1) / P(b), a ratio of exact integers (all below 2^53).
            let ratio =
                ((x - b) as f64 * (a - b) as f64) / ((b + 1) as f64 * (n + b + 1 - x - a) as f64);
            term *= ratio;
            sum += term;
            if sum > RESCALE_ABOVE {
                term /= RESCALE_ABOVE;
                sum /= RESCALE_ABOVE;
                ln_scale += RESCALE_ABOVE.ln();
            }
            // Past the mode the ratios only shrink (the distribution is log-concave), so the rest
            // of the tail is below term · ratio / (1 − ratio).
            if ratio < 1.0 && term * ratio < (1.0 - ratio) * sum * f64::EPSILON * 0.01 {
                break;
            }
        }
        Probability::from_ln(ln_scale + sum.ln())
    }

    /// P(B = b) for every b of the support, from `min_overlap()` on; the terms sum to 1.
    pub fn pmf(&self) -> Vec<f64> {
        let (lo, hi) = (self.min_overlap(), self.max_overlap());
        let (n, x, a) = (self.population, self.small, self.large);
        let ratio = |b: u64| {
            ((x - b) as f64 * (a - b) as f64) / ((b + 1) as f64 * (n + b + 1 - x - a) as f64)
        };
        // Start from the mode (weight 1) and walk outwards: every weight is then at most 1.
        let mode = (((x + 1) as f64 * (a + 1) as f64) / (n + 2) as f64).floor() as u64;
        let mode = mode.clamp(lo, hi);
        let mut weights = vec![0.0; (hi - lo + 1) as usize];
        weights[(mode - lo) as usize] = 1.0;
        for b in mode..hi {
            weights[(b + 1 - lo) as usize] = weights[(b - lo) as usize] * ratio(b);
        }
        for b in (lo..mode).rev() {
            weights[(b - lo) as usize] = weights[(b + 1 - lo) as usize] / ratio(b);
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        weights
    }
}

/// Rescale the running tail sum before it can overflow (terms can grow by 1e300 past the first).
const RESCALE_ABOVE: f64 = 1e200;

/// Neumaier's compensated summation: the error stays at a few ulps of the total, however many terms.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obviously correct version: C(n, k) by Pascal's rule in f64 (exact for small n).
    fn pascal(n: usize) -> Vec<Vec<f64>> {
        let mut rows = vec![vec![1.0]];
        for i in 1..=n {
            let prev = &rows[i - 1];
            let mut row = vec![1.0; i + 1];
            for k in 1..i {
                row[k] = prev[k - 1] + prev[k];
            }
            rows.push(row);
        }
        rows
    }

    #[test]
    fn ln_binomial_matches_pascal_exactly_for_small_n() {
        let rows = pascal(60);
        for (n, row) in rows.iter().enumerate() {
            for (k, c) in row.iter().enumerate() {
                let got = ln_binomial(n as u64, k as u64);
                assert!(
                    (got - c.ln()).abs() <= 1e-13 * c.ln().abs().max(1.0),
                    "C({n},{k})"
                );
            }
            assert_eq!(ln_binomial(n as u64, n as u64 + 1), f64::NEG_INFINITY);
        }
    }

    #[test]
    fn the_pmf_matches_binomial_ratios_and_sums_to_one() {
        let rows = pascal(60);
        for &(n, x, a) in &[(60u64, 10u64, 20u64), (30, 25, 20), (50, 1, 50), (40, 0, 7)] {
            let h = Hypergeometric::new(n, x, a);
            let pmf = h.pmf();
            let total: f64 = pmf.iter().sum();
            assert!((total - 1.0).abs() < 1e-14);
            for b in h.min_overlap()..=h.max_overlap() {
                let exact = rows[x as usize][b as usize] * rows[(n - x) as usize][(a - b) as usize]
                    / rows[n as usize][a as usize];
                let direct = h.ln_pmf(b).exp();
                let walked = pmf[(b - h.min_overlap()) as usize];
                assert!(
                    (direct - exact).abs() <= 1e-13 * exact,
                    "n={n} x={x} a={a} b={b}"
                );
                assert!(
                    (walked - exact).abs() <= 1e-12 * exact,
                    "n={n} x={x} a={a} b={b}"
                );
            }
        }
    }

    #[test]
    fn the_tail_is_the_sum_of_the_pmf() {
        let h = Hypergeometric::new(2048, 24, 40);
        let pmf = h.pmf();
        for from in 0..=30u64 {
            let summed: f64 = pmf.iter().skip(from as usize).sum();
            let tail = h.upper_tail(from).value();
            assert!(
                (tail - summed).abs() <= 1e-12 * summed.max(1e-300),
                "from {from}"
            );
        }
        assert_eq!(h.upper_tail(0), Probability::ONE);
        assert_eq!(h.upper_tail(25), Probability::ZERO);
    }

    #[test]
    fn a_tail_that_rises_by_hundreds_of_orders_does_not_overflow() {
        // The first term is about 1e-1900 of the mode's.
        let h = Hypergeometric::new(200_000, 100_000, 5_000);
        let tail = h.upper_tail(1);
        assert!(tail.ln().abs() < 1e-12);
        assert!(h.upper_tail(2600).ln() < -1.0);
    }
}
