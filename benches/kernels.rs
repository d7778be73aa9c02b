//! Recognition against the machine's floor, side by side in one run.
//!
//! The floor is the bare count: the standard workload's segments as a plain row-major bit matrix
//! (one row of segment bits per input bit), added 256 segments at a time in AVX2 registers with a
//! Harley–Seal tree of carry-save adders, then compared with the threshold bit-sliced, and the
//! slots reaching it listed. No probabilities, no neurons, no answer: what one core can do at
//! best. Against it: the engine's whole recognition (counting, probabilities, the answer) with
//! each kernel this CPU supports, on one thread.
//!
//! `cargo bench --bench kernels`; medians of seven passes over the 10,000 queries, the floor and
//! the kernels taking turns within each pass so drift on a shared machine hits them alike.

#![allow(unsafe_code)] // the floor's AVX2 intrinsics

use dendrite::bench::{learn, queries, standard_space, store_requests};
use dendrite::engine::oracle::PlainIndex;
use dendrite::engine::{Kernel, Query, Space, SpaceParams};
use dendrite::workload::Workload;
use roaring::RoaringBitmap;
use std::time::Instant;

const PASSES: usize = 7;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The floor's matrix: `rows[cell]` holds one bit per segment slot, padded to whole vectors.
struct Floor {
    rows: Vec<Vec<u64>>,
    words: usize,
}

impl Floor {
    fn of(space: &Space) -> Floor {
        let slots = space.synapses_by_slot();
        let words = slots.len().div_ceil(256) * 4;
        let mut rows = vec![vec![0u64; words]; space.params().input_size as usize];
        for (slot, synapses) in slots.iter().enumerate() {
            for &cell in synapses.iter().flatten() {
                rows[cell as usize][slot / 64] |= 1 << (slot % 64);
            }
        }
        Floor { rows, words }
    }

    /// The slots whose overlap with `input` reaches `theta`.
    #[cfg(target_arch = "x86_64")]
    fn reaching(&self, input: &[u32], theta: u32, out: &mut Vec<u32>) {
        assert!(std::arch::is_x86_feature_detected!("avx2"));
        let rows: Vec<&[u64]> = input.iter().map(|&c| &self.rows[c as usize][..]).collect();
        // SAFETY: AVX2 was detected just above.
        unsafe { floor_avx2(&rows, self.words, theta, out) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn floor_avx2(rows: &[&[u64]], words: usize, theta: u32, out: &mut Vec<u32>) {
    use std::arch::x86_64::*;
    #[inline]
    #[target_feature(enable = "avx2")]
    fn csa(a: __m256i, b: __m256i, c: __m256i) -> (__m256i, __m256i) {
        let u = _mm256_xor_si256(a, b);
        let carries = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
        (carries, _mm256_xor_si256(u, c))
    }
    out.clear();
    let zero = _mm256_setzero_si256();
    for at in (0..words).step_by(4) {
        // SAFETY: every row holds `words` words, a multiple of four, and `at + 4 <= words`.
        let load = |r: &[u64]| unsafe { _mm256_loadu_si256(r.as_ptr().add(at).cast()) };
        let (mut ones, mut twos, mut fours) = (zero, zero, zero);
        // planes[0] holds the eights, planes[k] bit 3 + k of the counts.
        let mut planes = [zero; 8];
        for group in rows.chunks(8) {
            let r = |k: usize| group.get(k).map_or(zero, |row| load(row));
            let (twos_a, o) = csa(ones, r(0), r(1));
            let (twos_b, o) = csa(o, r(2), r(3));
            let (fours_a, t) = csa(twos, twos_a, twos_b);
            let (twos_a, o) = csa(o, r(4), r(5));
            let (twos_b, o) = csa(o, r(6), r(7));
            let (fours_b, t) = csa(t, twos_a, twos_b);
            let (mut carry, f) = csa(fours, fours_a, fours_b);
            (ones, twos, fours) = (o, t, f);
            for plane in &mut planes {
                let next = _mm256_and_si256(*plane, carry);
                *plane = _mm256_xor_si256(*plane, carry);
                carry = next;
            }
        }
        let all = [
            ones, twos, fours, planes[0], planes[1], planes[2], planes[3], planes[4],
        ];
        let mut borrow = zero;
        for (k, plane) in all.iter().enumerate() {
            borrow = if (theta >> k) & 1 == 1 {
                _mm256_or_si256(_mm256_xor_si256(*plane, _mm256_set1_epi8(-1)), borrow)
            } else {
                _mm256_andnot_si256(*plane, borrow)
            };
        }
        let mut reaching = [0u64; 4];
        // SAFETY: `reaching` is 32 bytes; the store is unaligned.
        unsafe {
            _mm256_storeu_si256(
                reaching.as_mut_ptr().cast(),
                _mm256_xor_si256(borrow, _mm256_set1_epi8(-1)),
            )
        };
        for (w, mut bits) in reaching.into_iter().enumerate() {
            while bits != 0 {
                out.push(((at + w) * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let workload = Workload::standard();
    let spec = standard_space();
    let requests = store_requests(&workload.stores, spec.input_size).unwrap();
    let queries: Vec<Query> = queries(&workload.queries, spec.input_size).unwrap();
    let mut space = learn(SpaceParams::new(&spec).unwrap(), &requests);
    let theta = space.params().threshold;
    let floor = Floor::of(&space);
    println!(
        "== standard workload: {} segments, {} synapses, {} queries, threshold {theta}",
        space.segment_count(),
        space.synapse_count(),
        queries.len()
    );

    #[cfg(target_arch = "x86_64")]
    let floor_available = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let floor_available = false;

    // The floor must find exactly the slots the plain oracle finds reaching the threshold.
    let mut reaching = Vec::new();
    if floor_available {
        let plain = PlainIndex::build(&space);
        for query in queries.iter().take(100) {
            #[cfg(target_arch = "x86_64")]
            floor.reaching(query.active.cells(), theta, &mut reaching);
            let input: RoaringBitmap = query.active.cells().iter().copied().collect();
            let expected: Vec<u32> = (0..)
                .zip(plain.overlaps(&input))
                .filter(|&(_, overlap)| overlap >= theta)
                .map(|(slot, _)| slot)
                .collect();
            assert_eq!(
                reaching, expected,
                "the floor disagrees with the plain oracle"
            );
        }
    }

    let kernels = Kernel::available();
    let mut floor_rates = Vec::new();
    let mut kernel_rates = vec![Vec::new(); kernels.len()];
    for _ in 0..PASSES {
        if floor_available {
            let started = Instant::now();
            for query in &queries {
                #[cfg(target_arch = "x86_64")]
                floor.reaching(query.active.cells(), theta, &mut reaching);
                std::hint::black_box(&reaching);
            }
            floor_rates.push(queries.len() as f64 / started.elapsed().as_secs_f64());
        }
        for (kernel, rates) in kernels.iter().zip(&mut kernel_rates) {
            space.use_kernel(*kernel);
            let started = Instant::now();
            for query in &queries {
                std::hint::black_box(space.recognize(query).unwrap());
            }
            rates.push(queries.len() as f64 / started.elapsed().as_secs_f64());
        }
    }
    let floor_rate = floor_available.then(|| median(floor_rates));
    match floor_rate {
        Some(rate) => println!(
            "   floor (bare AVX2 count, no answer): {rate:>9.0} queries/s ({:.2} us)",
            1e6 / rate
        ),
        None => println!("   floor: needs AVX2, which this CPU lacks"),
    }
    for (kernel, rates) in kernels.iter().zip(kernel_rates) {
        let rate = median(rates);
        let of_floor = floor_rate.map_or(String::new(), |f| {
            format!(", {:.0}% of the floor", 100.0 * rate / f)
        });
        println!(
            "   engine, kernel {:<8}  {rate:>9.0} queries/s ({:.2} us){of_floor}",
            kernel.name(),
            1e6 / rate
        );
    }
    println!(
        "   (AVX-512 kernel: {})",
        if kernels.iter().any(|k| k.name() == "avx512") {
            "measured above"
        } else {
            "this CPU lacks AVX-512 F with VPOPCNTDQ"
        }
    );
}
