//! The counting kernel of the dense layout, compiled once per instruction set and chosen at run
//! time: one binary (and one Docker image) runs on any x86-64 or aarch64, and still counts with
//! the vectors of the CPU it lands on (AVX2 where it has it: see [`Kernel::detected`]).
//!
//! A block of rows (one row per active input bit, [`BLOCK`] words of segment bits each) is summed
//! into bit planes with a Harley–Seal tree of carry-save adders, `LANES` words at a time: the
//! planes of one chunk live in vector registers while every row is added, then the chunk's
//! segments are compared with the threshold and the ones reaching it appended. The source is one
//! generic function; each [`Kernel`] instantiates it with the vector width of its instruction set
//! (2 words for the portable kernel: SSE2 on x86-64, NEON on aarch64; 4 for AVX2; 8 for AVX-512)
//! inside a `#[target_feature]` function, so the compiler emits those instructions for it alone.
//!
//! This is the one module of the crate allowed `unsafe`: calling a `#[target_feature]` function is
//! sound only on a CPU that has the features, which is what a [`Kernel`] value proves. The type
//! cannot be built outside this module except through [`Kernel::available`] and
//! [`Kernel::detected`], which ask the CPU.
#![allow(unsafe_code)]

use super::{Overlaps, SegmentSlot};
use std::fmt;
use std::sync::OnceLock;

/// Words of each row counted as one block: 2048 segment slots, a multiple of every kernel's width.
pub(super) const BLOCK: usize = 32;

/// One block of one row: bit `s` of word `w` is set when segment slot `64·w + s` of the block has
/// a synapse on the row's input bit.
pub(super) type Row = [u64; BLOCK];

/// A row of zeros: pads a block's rows to a multiple of eight, so the adder tree never branches
/// on a missing row.
pub(super) static ZERO_ROW: Row = [0; BLOCK];

/// Bit planes enough for any count: the dense layout serves inputs of at most 2^16 bits.
const MAX_PLANES: usize = 18;
/// Bit planes enough for a count of fewer than 128 rows, the usual query: a chunk's planes are
/// set up for every chunk, and sized for the rows at hand they cost a few stores, not dozens.
const FEW_PLANES: usize = 8;

/// A counting kernel the CPU running this process supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Isa);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The kernel without CPU-specific instructions, which every machine runs.
    pub const PORTABLE: Kernel = Kernel(Isa::Portable);

    /// Every kernel this CPU supports, slowest first.
    pub fn available() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::PORTABLE];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                kernels.push(Kernel(Isa::Avx2));
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                kernels.push(Kernel(Isa::Avx512));
            }
        }
        kernels
    }

    /// The kernel recognition counts with unless told otherwise, detected once per process: AVX2
    /// where the CPU has it, even beside AVX-512. A block is 32 words of segment bits, so the
    /// AVX-512 kernel does half the loads of AVX2's but keeps twice the bytes of bit planes in
    /// flight, and measured it was never faster: alike on an Intel Xeon, 13-25% slower on an AMD
    /// EPYC (the standard workload and a 1M-pattern space, `cargo bench --bench kernels`,
    /// `dendrite bench --kernel`). It stays available by name, to measure on other CPUs.
    pub fn detected() -> Kernel {
        static DETECTED: OnceLock<Kernel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let available = Kernel::available();
            available
                .iter()
                .copied()
                .find(|kernel| kernel.name() == "avx2")
                .or_else(|| available.last().copied())
                .expect("the portable kernel is always available")
        })
    }

    /// The supported kernel of this name (`portable`, `avx2`, `avx512`), if the CPU has it.
    pub fn named(name: &str) -> Option<Kernel> {
        Kernel::available().into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }

    /// Counts one block: `rows` are the block's rows of the input's active bits, padded with
    /// [`ZERO_ROW`] to a multiple of eight; `words` (a multiple of eight, at most [`BLOCK`]) bounds
    /// the words worth counting; `first_slot` is the block's first segment slot. Appends every
    /// slot whose count reaches `theta` and adds the slots counted above zero to `touched`.
    pub(super) fn count_block(
        self,
        rows: &[&Row],
        words: usize,
        first_slot: usize,
        theta: u32,
        overlaps: &mut Overlaps,
    ) {
        debug_assert!(rows.len().is_multiple_of(8) && words.is_multiple_of(8) && words <= BLOCK);
        match self.0 {
            Isa::Portable => count_block::<2>(rows, words, first_slot, theta, overlaps),
            // SAFETY: a `Kernel(Isa::Avx2)` is only built by `available`, after the CPU reported
            // AVX2 and POPCNT, the features `count_block_avx2` is compiled for.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { count_block_avx2(rows, words, first_slot, theta, overlaps) },
            // SAFETY: as above, for AVX-512 F, VPOPCNTDQ and POPCNT.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { count_block_avx512(rows, words, first_slot, theta, overlaps) },
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn count_block_avx2(
    rows: &[&Row],
    words: usize,
    first_slot: usize,
    theta: u32,
    overlaps: &mut Overlaps,
) {
    count_block::<4>(rows, words, first_slot, theta, overlaps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
fn count_block_avx512(
    rows: &[&Row],
    words: usize,
    first_slot: usize,
    theta: u32,
    overlaps: &mut Overlaps,
) {
    count_block::<8>(rows, words, first_slot, theta, overlaps)
}

/// `LANES` words of segment bits: one vector register of the kernel's width.
type Lanes<const LANES: usize> = [u64; LANES];

/// A carry-save adder: three numbers in, their sum as (carries worth two, sum bits worth one).
/// Five word operations count three inputs.
#[inline(always)]
fn csa<const LANES: usize>(
    a: Lanes<LANES>,
    b: Lanes<LANES>,
    c: Lanes<LANES>,
) -> (Lanes<LANES>, Lanes<LANES>) {
    let mut carries = [0; LANES];
    let mut sums = [0; LANES];
    for w in 0..LANES {
        let u = a[w] ^ b[w];
        carries[w] = (a[w] & b[w]) | (u & c[w]);
        sums[w] = u ^ c[w];
    }
    (carries, sums)
}

#[inline(always)]
fn load<const LANES: usize>(row: &Row, at: usize) -> Lanes<LANES> {
    let mut lanes = [0; LANES];
    lanes.copy_from_slice(&row[at..at + LANES]);
    lanes
}

/// The block's counts, `LANES` words at a time; see [`Kernel::count_block`].
#[inline(always)]
fn count_block<const LANES: usize>(
    rows: &[&Row],
    words: usize,
    first_slot: usize,
    theta: u32,
    overlaps: &mut Overlaps,
) {
    if rows.len() < 1 << (FEW_PLANES - 1) {
        for at in (0..words).step_by(LANES) {
            let (planes, used) = count_chunk::<LANES, FEW_PLANES>(rows, at);
            select(&planes[..used], first_slot + at * 64, theta, overlaps);
        }
    } else {
        for at in (0..words).step_by(LANES) {
            let (planes, used) = count_chunk::<LANES, MAX_PLANES>(rows, at);
            select(&planes[..used], first_slot + at * 64, theta, overlaps);
        }
    }
}

/// Sums `LANES` words of every row into bit planes (plane k holds bit k of each count) with a
/// Harley–Seal tree: sixteen rows reduce to one word of sixteens, which ripples into the higher
/// planes; a last group of eight stops at the eights. About five word operations per row. Counts
/// of `rows.len()` need fewer than `PLANES` planes.
#[inline(always)]
fn count_chunk<const LANES: usize, const PLANES: usize>(
    rows: &[&Row],
    at: usize,
) -> ([Lanes<LANES>; PLANES], usize) {
    let zero = [0u64; LANES];
    let (mut ones, mut twos, mut fours, mut eights) = (zero, zero, zero, zero);
    let mut planes = [zero; PLANES];
    let mut high_used = 4; // planes[4..high_used] hold the sixteens, thirty-twos, ...
    for group in rows.chunks(16) {
        let r = |k: usize| load::<LANES>(group[k], at);
        let (twos_a, o) = csa(ones, r(0), r(1));
        let (twos_b, o) = csa(o, r(2), r(3));
        let (fours_a, t) = csa(twos, twos_a, twos_b);
        let (twos_a, o) = csa(o, r(4), r(5));
        let (twos_b, o) = csa(o, r(6), r(7));
        let (fours_b, t) = csa(t, twos_a, twos_b);
        let (eights_a, f) = csa(fours, fours_a, fours_b);
        let sixteens;
        if group.len() == 8 {
            let mut carry = zero;
            for w in 0..LANES {
                carry[w] = eights[w] & eights_a[w];
                eights[w] ^= eights_a[w];
            }
            (ones, twos, fours, sixteens) = (o, t, f, carry);
        } else {
            let (twos_a, o) = csa(o, r(8), r(9));
            let (twos_b, o) = csa(o, r(10), r(11));
            let (fours_a, t) = csa(t, twos_a, twos_b);
            let (twos_a, o) = csa(o, r(12), r(13));
            let (twos_b, o) = csa(o, r(14), r(15));
            let (fours_b, t) = csa(t, twos_a, twos_b);
            let (eights_b, f) = csa(f, fours_a, fours_b);
            let (s, e) = csa(eights, eights_a, eights_b);
            (ones, twos, fours, eights, sixteens) = (o, t, f, e, s);
        }
        // Add the sixteens into the higher planes, carrying upwards.
        let mut carry = sixteens;
        for plane in &mut planes[4..high_used] {
            let mut any = 0;
            for w in 0..LANES {
                let next = plane[w] & carry[w];
                plane[w] ^= carry[w];
                carry[w] = next;
                any |= next;
            }
            if any == 0 {
                break;
            }
        }
        if carry.iter().any(|&w| w != 0) {
            planes[high_used] = carry;
            high_used += 1;
        }
    }
    planes[..4].copy_from_slice(&[ones, twos, fours, eights]);
    (planes, high_used)
}

/// Appends the chunk's slots whose count reaches `theta` (slot order) and counts the slots
/// touched.
#[inline(always)]
fn select<const LANES: usize>(
    planes: &[Lanes<LANES>],
    first_slot: usize,
    theta: u32,
    overlaps: &mut Overlaps,
) {
    let mut touched = [0u64; LANES];
    for plane in planes {
        for w in 0..LANES {
            touched[w] |= plane[w];
        }
    }
    overlaps.touched += touched
        .iter()
        .map(|w| u64::from(w.count_ones()))
        .sum::<u64>();
    if theta >> planes.len() != 0 {
        return; // theta needs more bits than any count has
    }
    // count >= theta  ⇔  count − theta does not borrow; the borrow is computed plane by plane,
    // from the lowest bit, for every slot of the chunk at once.
    let mut borrow = [0u64; LANES];
    for (k, plane) in planes.iter().enumerate() {
        let theta_bit = (theta >> k) & 1 == 1;
        for w in 0..LANES {
            borrow[w] = if theta_bit {
                !plane[w] | borrow[w]
            } else {
                !plane[w] & borrow[w]
            };
        }
    }
    for w in 0..LANES {
        let mut reaching = !borrow[w] & touched[w];
        while reaching != 0 {
            let bit = reaching.trailing_zeros() as usize;
            reaching &= reaching - 1;
            let count = planes
                .iter()
                .enumerate()
                .map(|(k, plane)| (((plane[w] >> bit) & 1) as u32) << k)
                .sum();
            overlaps
                .reaching
                .push(((first_slot + w * 64 + bit) as SegmentSlot, count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_is_detected_where_the_cpu_has_it_and_every_supported_kernel_is_named() {
        let available = Kernel::available();
        assert_eq!(available[0], Kernel::PORTABLE);
        let avx2 = Kernel::named("avx2");
        let expected = avx2.or_else(|| available.last().copied());
        assert_eq!(Some(Kernel::detected()), expected);
        for kernel in &available {
            assert_eq!(Kernel::named(kernel.name()), Some(*kernel));
        }
        assert_eq!(Kernel::named("sse9"), None);
    }

    /// The crate denies `unsafe` and this module alone allows it: no other file may opt out.
    #[test]
    fn no_other_module_allows_unsafe_code() {
        fn visit(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains(concat!("allow(", "unsafe_code)")) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with("engine/index/kernel.rs"), "{found:?}");
    }
}
