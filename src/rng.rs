//! A small, seeded random number generator whose sequence never changes.
//!
//! A space's seed must give the same synapses on every machine and every version of dendrite, so the
//! generator is defined here (SplitMix64, Steele, Lea and Flood 2014) rather than borrowed from a
//! crate whose stream may change between releases. It is fast, passes BigCrush, and is not meant
//! for cryptography.

use std::collections::HashSet;

/// SplitMix64: a 64-bit state advanced by a Weyl sequence and mixed by a bijective finaliser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in 0..bound, without modulo bias (Lemire's multiply-and-reject).
    ///
    /// # Panics
    /// When `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(bound);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }

    /// A uniformly random subset of `k` of `items` (partial Fisher–Yates), in the order drawn.
    ///
    /// # Panics
    /// When `k` exceeds `items.len()`.
    pub fn choose<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        assert!(k <= items.len(), "cannot choose {k} of {}", items.len());
        let mut pool = items.to_vec();
        for i in 0..k {
            let j = i + self.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }

    /// `k` distinct integers from 0..n, sorted (Floyd's algorithm: k draws whatever n is).
    ///
    /// # Panics
    /// When `k` exceeds `n`.
    pub fn distinct_below(&mut self, n: u32, k: u32) -> Vec<u32> {
        assert!(k <= n, "cannot draw {k} distinct values below {n}");
        let mut chosen = HashSet::with_capacity(k as usize);
        for j in n - k..n {
            let t = self.below(u64::from(j) + 1) as u32;
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        let mut sorted: Vec<u32> = chosen.into_iter().collect();
        sorted.sort_unstable();
        sorted
    }
}

/// FNV-1a, 64-bit: a stable hash of bytes (std's hasher may change between releases), for
/// values that are stored and must hash the same in every version. Start from [`FNV1A_START`]
/// and fold bytes in, in as many calls as convenient.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// FNV-1a's offset basis: the hash of no bytes.
pub const FNV1A_START: u64 = 0xCBF2_9CE4_8422_2325;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // The reference vectors of FNV-1a 64 (Fowler, Noll, Vo): stored checksums depend on them.
        assert_eq!(fnv1a(FNV1A_START, b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a(FNV1A_START, b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(fnv1a(FNV1A_START, b"foobar"), 0x8594_4171_F739_67E8);
        assert_eq!(
            fnv1a(fnv1a(FNV1A_START, b"foo"), b"bar"),
            0x8594_4171_F739_67E8
        );
    }

    #[test]
    fn the_stream_is_fixed_for_a_seed() {
        // Reference values of SplitMix64 for seed 0; a change here would re-sample every space.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_is_uniform_enough_and_in_range() {
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        // Each count is Binomial(60000, 1/6): mean 10000, sd 91; 5 sd either way.
        assert!(
            counts.iter().all(|&c| (9_545..=10_455).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn distinct_draws_are_distinct_sorted_and_in_range() {
        let mut rng = Rng::new(3);
        for (n, k) in [(10u32, 10u32), (2048, 40), (5, 0), (1, 1)] {
            let drawn = rng.distinct_below(n, k);
            assert_eq!(drawn.len(), k as usize);
            assert!(drawn.windows(2).all(|w| w[0] < w[1]));
            assert!(drawn.iter().all(|&x| x < n));
        }
        let chosen = rng.choose(&[1, 2, 3, 4, 5], 3);
        let unique: HashSet<_> = chosen.iter().collect();
        assert_eq!(unique.len(), 3);
    }
}
