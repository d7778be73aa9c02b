//! Bit-sliced overlap counting over a dense matrix of input bits × segment slots.
//!
//! When a space's segments each cover a sizeable fraction of its input bits (the standard
//! workload: about 117 synapses on 2048 bits), one bit per (input bit, segment slot) takes less
//! memory than a 4-byte posting per synapse, and counting can work on 64 segments at a time: the
//! rows of the input's active bits are added as binary numbers held in bit planes (plane k holds
//! bit k of every segment's count), then compared with the threshold with a few bitwise
//! operations. A posting costs a scattered increment; here one word operation serves 64 segments.
//! The postings index stays the choice for sparse spaces, where rows would be mostly zeros.

use super::{Overlaps, SegmentSlot};
use crate::engine::pattern::CellIndex;

/// Words of each row counted together: the bit planes of a block stay in the L1 cache.
const BLOCK: usize = 32;

/// One row of bits per input bit; bit `slot` of row `cell` is set when segment `slot` has a
/// synapse on `cell`.
///
/// The rows are stored in blocks of [`BLOCK`] words (64 · BLOCK segment slots): block `b` holds
/// words `b · BLOCK ..` of every row, row by row. Counting reads one block at a time anyway, and
/// more segment slots mean one more block, allocated zeroed beside the others: growing never
/// copies the rows already there, so it never holds the space's write lock for long.
#[derive(Clone, Debug)]
pub struct DenseMatrix {
    input_size: usize,
    blocks: Vec<Box<[[u64; BLOCK]]>>,
}

impl DenseMatrix {
    pub fn new(input_size: u32) -> DenseMatrix {
        DenseMatrix {
            input_size: input_size as usize,
            blocks: Vec::new(),
        }
    }

    /// (block, word within the block's row, bit) of a slot.
    fn locate(slot: SegmentSlot) -> (usize, usize, u64) {
        let word = slot as usize / 64;
        (word / BLOCK, word % BLOCK, 1 << (slot % 64))
    }

    pub fn set(&mut self, cell: CellIndex, slot: SegmentSlot) {
        let (block, word, bit) = DenseMatrix::locate(slot);
        while self.blocks.len() <= block {
            // `vec!` of zeros asks the allocator for zeroed memory: untouched pages cost nothing.
            self.blocks
                .push(vec![[0u64; BLOCK]; self.input_size].into_boxed_slice());
        }
        self.blocks[block][cell as usize][word] |= bit;
    }

    pub fn clear(&mut self, cell: CellIndex, slot: SegmentSlot) {
        let (block, word, bit) = DenseMatrix::locate(slot);
        if let Some(rows) = self.blocks.get_mut(block) {
            rows[cell as usize][word] &= !bit;
        }
    }

    /// Whether segment `slot` has a synapse on `cell`.
    #[cfg(test)]
    pub fn get(&self, cell: CellIndex, slot: SegmentSlot) -> bool {
        let (block, word, bit) = DenseMatrix::locate(slot);
        self.blocks
            .get(block)
            .is_some_and(|rows| rows[cell as usize][word] & bit != 0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.blocks.len() * self.block_bytes()
    }

    /// A block: its rows, and its pointer in the list of blocks.
    fn block_bytes(&self) -> usize {
        self.input_size * size_of::<[u64; BLOCK]>() + size_of::<Box<[[u64; BLOCK]]>>()
    }

    /// The bytes to allocate before `slot` can be set: its block, unless it is there already.
    pub fn bytes_to_hold(&self, slot: SegmentSlot) -> u64 {
        let (block, _, _) = DenseMatrix::locate(slot);
        if block < self.blocks.len() {
            0
        } else {
            ((block + 1 - self.blocks.len()) * self.block_bytes()) as u64
        }
    }

    /// Every segment among the first `slots` whose overlap with `input` reaches `theta`, as
    /// (slot, overlap) in slot order, and how many segments the input touched.
    pub fn overlaps_reaching(&self, input: &[CellIndex], theta: u32, slots: usize) -> Overlaps {
        let mut overlaps = Overlaps::default();
        let words = slots.div_ceil(64);
        let mut rows: Vec<&[u64; BLOCK]> = Vec::with_capacity(input.len());
        for (b, block) in self.blocks.iter().enumerate() {
            let start = b * BLOCK;
            if start >= words {
                break;
            }
            rows.clear();
            rows.extend(input.iter().map(|&cell| &block[cell as usize]));
            // Words past `slots` in the last block are zero: counted, but never selected.
            BitSlicedCounts::of(&rows, BLOCK.min(words - start)).select(
                start,
                theta,
                &mut overlaps,
            );
        }
        overlaps
    }
}

/// Bit planes enough for any count: the dense layout serves inputs of at most 2^16 bits.
const MAX_PLANES: usize = 18;

/// The per-segment counts of one block, in binary: plane k holds bit k of 64 counts per word.
/// Fixed arrays: counting allocates nothing.
struct BitSlicedCounts {
    planes: [[u64; BLOCK]; MAX_PLANES],
    used: usize,
    width: usize,
}

/// A carry-save adder over a block: adds `b` and `c` to `low`, leaving the sum bits in `low` and
/// the carries (worth twice as much) in `high`. Five word operations count three inputs.
fn csa(high: &mut [u64; BLOCK], low: &mut [u64; BLOCK], b: &[u64; BLOCK], c: &[u64; BLOCK]) {
    for w in 0..BLOCK {
        let u = low[w] ^ b[w];
        high[w] = (low[w] & b[w]) | (u & c[w]);
        low[w] = u ^ c[w];
    }
}

impl BitSlicedCounts {
    /// Sums the rows (each `width` words) with a Harley–Seal tree of carry-save adders: sixteen
    /// rows at a time reduce to one word of sixteens, which ripple into the higher planes. That is
    /// about five word operations per row, against two dozen for adding rows one by one.
    fn of(rows: &[&[u64; BLOCK]], width: usize) -> BitSlicedCounts {
        let zero = [0u64; BLOCK];
        let row = |i: usize| rows.get(i).copied().unwrap_or(&zero);
        let (mut ones, mut twos, mut fours, mut eights) =
            ([0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK]);
        let (mut twos_a, mut twos_b, mut fours_a, mut fours_b) =
            ([0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK]);
        let (mut eights_a, mut eights_b, mut sixteens) =
            ([0u64; BLOCK], [0u64; BLOCK], [0u64; BLOCK]);
        // Planes for 16, 32, 64, ...: enough for every count up to the number of rows.
        let mut high = [[0u64; BLOCK]; MAX_PLANES - 4];
        let mut high_used = 0;
        for group in (0..rows.len()).step_by(16) {
            let r = |k: usize| row(group + k);
            // Eight rows make one word of eights; a group of at most eight (the tail) stops there
            // and adds it to the eights plane, instead of padding sixteen rows with zeros.
            csa(&mut twos_a, &mut ones, r(0), r(1));
            csa(&mut twos_b, &mut ones, r(2), r(3));
            csa(&mut fours_a, &mut twos, &twos_a, &twos_b);
            csa(&mut twos_a, &mut ones, r(4), r(5));
            csa(&mut twos_b, &mut ones, r(6), r(7));
            csa(&mut fours_b, &mut twos, &twos_a, &twos_b);
            csa(&mut eights_a, &mut fours, &fours_a, &fours_b);
            if rows.len() - group <= 8 {
                for w in 0..BLOCK {
                    sixteens[w] = eights[w] & eights_a[w];
                    eights[w] ^= eights_a[w];
                }
            } else {
                csa(&mut twos_a, &mut ones, r(8), r(9));
                csa(&mut twos_b, &mut ones, r(10), r(11));
                csa(&mut fours_a, &mut twos, &twos_a, &twos_b);
                csa(&mut twos_a, &mut ones, r(12), r(13));
                csa(&mut twos_b, &mut ones, r(14), r(15));
                csa(&mut fours_b, &mut twos, &twos_a, &twos_b);
                csa(&mut eights_b, &mut fours, &fours_a, &fours_b);
                csa(&mut sixteens, &mut eights, &eights_a, &eights_b);
            }
            // Add the sixteens into the higher planes, carrying upwards.
            let mut carry = sixteens;
            for plane in high[..high_used].iter_mut() {
                let mut any = 0;
                for w in 0..BLOCK {
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
                high[high_used] = carry;
                high_used += 1;
            }
        }
        let mut planes = [[0u64; BLOCK]; MAX_PLANES];
        planes[..4].copy_from_slice(&[ones, twos, fours, eights]);
        planes[4..4 + high_used].copy_from_slice(&high[..high_used]);
        BitSlicedCounts {
            planes,
            used: 4 + high_used,
            width,
        }
    }

    /// Appends the segments whose count reaches `theta` and counts the segments touched.
    fn select(&self, start: usize, theta: u32, overlaps: &mut Overlaps) {
        let planes = self.used;
        let used = &self.planes[..planes];
        for w in 0..self.width {
            let touched = used.iter().fold(0, |any, plane| any | plane[w]);
            overlaps.touched += u64::from(touched.count_ones());
            // count >= theta  ⇔  count − theta does not borrow; the borrow is computed plane by
            // plane, from the lowest bit, for 64 segments at once.
            let mut borrow = 0u64;
            for (k, plane) in used.iter().enumerate() {
                borrow = if (theta >> k) & 1 == 1 {
                    !plane[w] | borrow
                } else {
                    !plane[w] & borrow
                };
            }
            if planes < 32 && theta >> planes != 0 {
                borrow = !0; // theta needs more bits than any count has
            }
            let mut reaching = !borrow & touched;
            while reaching != 0 {
                let bit = reaching.trailing_zeros() as usize;
                reaching &= reaching - 1;
                let count = used
                    .iter()
                    .enumerate()
                    .map(|(k, plane)| (((plane[w] >> bit) & 1) as u32) << k)
                    .sum();
                overlaps
                    .reaching
                    .push((((start + w) * 64 + bit) as SegmentSlot, count));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The obvious count: for each slot, how many input cells have its bit set.
    fn plain(matrix: &DenseMatrix, input: &[CellIndex], theta: u32, slots: usize) -> Overlaps {
        let counts: Vec<u32> = (0..slots)
            .map(|slot| {
                input
                    .iter()
                    .filter(|&&cell| matrix.get(cell, slot as SegmentSlot))
                    .count() as u32
            })
            .collect();
        Overlaps::from_counts(&counts, theta)
    }

    #[test]
    fn bit_sliced_counts_agree_with_plain_counting() {
        let mut rng = Rng::new(9);
        for &(n, slots, density_percent) in &[
            (64u32, 10usize, 50u64),
            (300, 3000, 10),
            (2048, 700, 5),
            (40, 130, 90),
        ] {
            let mut matrix = DenseMatrix::new(n);
            for slot in 0..slots {
                for cell in 0..n {
                    if rng.below(100) < density_percent {
                        matrix.set(cell, slot as SegmentSlot);
                    }
                }
            }
            for size in [1u32, 7, n / 2, n] {
                let input = rng.distinct_below(n, size);
                for theta in [1u32, 2, 5, size / 3 + 1, size, size + 1] {
                    assert_eq!(
                        matrix.overlaps_reaching(&input, theta, slots),
                        plain(&matrix, &input, theta, slots),
                        "n={n} slots={slots} size={size} theta={theta}"
                    );
                }
            }
            matrix.clear(0, 0);
            let input: Vec<u32> = (0..n).collect();
            assert_eq!(
                matrix.overlaps_reaching(&input, 1, slots),
                plain(&matrix, &input, 1, slots)
            );
        }
    }
}
