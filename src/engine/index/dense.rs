//! Bit-sliced overlap counting over a dense matrix of input bits × segment slots.
//!
//! When a space's segments each cover a sizeable fraction of its input bits (the standard
//! workload: about 117 synapses on 2048 bits), one bit per (input bit, segment slot) takes less
//! memory than a 4-byte posting per synapse, and counting can work on 64 segments at a time: the
//! rows of the input's active bits are added as binary numbers held in bit planes (plane k holds
//! bit k of every segment's count), then compared with the threshold with a few bitwise
//! operations. A posting costs a scattered increment; here one word operation serves 64 segments.
//! The postings index stays the choice for sparse spaces, where rows would be mostly zeros.

use super::kernel::{BLOCK, Kernel, Row, ZERO_ROW};
use super::{Overlaps, SegmentSlot};
use crate::engine::pattern::CellIndex;
use rayon::prelude::*;

/// Blocks (of 2048 segment slots each) from which one recognition is split across the threads of
/// rayon's pool, one run of blocks per task. Below it a query takes a few microseconds on one
/// core, less than handing the work around would cost.
const PARALLEL_FROM_BLOCKS: usize = 16;

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
    blocks: Vec<Box<[Row]>>,
}

impl DenseMatrix {
    pub fn new(input_size: u32) -> DenseMatrix {
        DenseMatrix {
            input_size: input_size as usize,
            blocks: Vec::new(),
        }
    }

    /// A matrix holding each segment slot's cells, given in slot order. Built a block at a time,
    /// the blocks on rayon's threads: start-up builds the index once every row is read, where
    /// setting bits store by store touched a random place of a matrix of hundreds of megabytes
    /// for every synapse.
    pub fn build(input_size: u32, segments: &[(SegmentSlot, &[CellIndex])]) -> DenseMatrix {
        let slots_per_block = (64 * BLOCK) as SegmentSlot;
        let blocks = segments
            .last()
            .map_or(0, |&(slot, _)| (slot / slots_per_block) as usize + 1);
        let blocks = (0..blocks)
            .into_par_iter()
            .map(|b| {
                let first = b as SegmentSlot * slots_per_block;
                let start = segments.partition_point(|&(slot, _)| slot < first);
                let end = segments.partition_point(|&(slot, _)| slot < first + slots_per_block);
                let mut rows = vec![[0u64; BLOCK]; input_size as usize].into_boxed_slice();
                for &(slot, cells) in &segments[start..end] {
                    let (_, word, bit) = DenseMatrix::locate(slot);
                    for &cell in cells {
                        rows[cell as usize][word] |= bit;
                    }
                }
                rows
            })
            .collect();
        DenseMatrix {
            input_size: input_size as usize,
            blocks,
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
        DenseMatrix::block_bytes_for(self.input_size)
    }

    fn block_bytes_for(input_size: usize) -> usize {
        input_size * size_of::<Row>() + size_of::<Box<[Row]>>()
    }

    /// The bytes a matrix of `input_size` rows takes to hold segment slots `0 .. slots`.
    pub fn bytes_for(input_size: u32, slots: usize) -> u64 {
        let blocks = slots.div_ceil(64 * BLOCK);
        (blocks * DenseMatrix::block_bytes_for(input_size as usize)) as u64
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

    /// Whether counting the first `slots` segment slots is split across rayon's threads.
    pub fn counts_in_parallel(slots: usize) -> bool {
        slots.div_ceil(64 * BLOCK) >= PARALLEL_FROM_BLOCKS
    }

    /// Every segment among the first `slots` whose overlap with `input` reaches `theta`, as
    /// (slot, overlap) in slot order, and how many segments the input touched, counted by
    /// `kernel`. A space of many blocks is counted in runs of blocks on rayon's threads (run a
    /// call inside a one-thread pool to keep it on one core).
    pub fn overlaps_reaching(
        &self,
        input: &[CellIndex],
        theta: u32,
        slots: usize,
        kernel: Kernel,
    ) -> Overlaps {
        let words = slots.div_ceil(64);
        let blocks = &self.blocks[..words.div_ceil(BLOCK).min(self.blocks.len())];
        let count = |first_block: usize, run: &[Box<[Row]>]| {
            let mut overlaps = Overlaps::default();
            let mut rows: Vec<&Row> = Vec::with_capacity(input.len().next_multiple_of(8));
            for (b, block) in (first_block..).zip(run) {
                rows.clear();
                rows.extend(input.iter().map(|&cell| &block[cell as usize]));
                rows.resize(rows.len().next_multiple_of(8), &ZERO_ROW);
                // Words past `slots` are zero: counted, but never selected.
                let block_words = (words - b * BLOCK).min(BLOCK).next_multiple_of(8);
                kernel.count_block(&rows, block_words, b * BLOCK * 64, theta, &mut overlaps);
            }
            overlaps
        };
        if !DenseMatrix::counts_in_parallel(slots) {
            return count(0, blocks);
        }
        let run = blocks.len().div_ceil(rayon::current_num_threads());
        let parts: Vec<Overlaps> = blocks
            .par_chunks(run)
            .enumerate()
            .map(|(i, part)| count(i * run, part))
            .collect();
        let mut overlaps = Overlaps::default();
        for part in parts {
            overlaps.reaching.extend(part.reaching);
            overlaps.touched += part.touched;
        }
        overlaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

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

    fn random_matrix(rng: &mut Rng, n: u32, slots: usize, density_percent: u64) -> DenseMatrix {
        let mut matrix = DenseMatrix::new(n);
        for slot in 0..slots {
            for cell in 0..n {
                if rng.below(100) < density_percent {
                    matrix.set(cell, slot as SegmentSlot);
                }
            }
        }
        matrix
    }

    /// Asserts that every kernel this CPU supports counts as the plain loop does.
    fn assert_every_kernel_agrees(matrix: &DenseMatrix, input: &[u32], theta: u32, slots: usize) {
        let expected = plain(matrix, input, theta, slots);
        for kernel in Kernel::available() {
            assert_eq!(
                matrix.overlaps_reaching(input, theta, slots, kernel),
                expected,
                "kernel {kernel}, {} input bits, theta {theta}, {slots} slots",
                input.len()
            );
        }
    }

    #[test]
    fn every_kernel_counts_as_the_plain_loop_does() {
        let mut rng = Rng::new(9);
        for &(n, slots, density_percent) in &[
            (64u32, 10usize, 50u64),
            (300, 3000, 10),
            (2048, 700, 5),
            (40, 130, 90),
        ] {
            let mut matrix = random_matrix(&mut rng, n, slots, density_percent);
            for size in [1u32, 7, n / 2, n] {
                let input = rng.distinct_below(n, size);
                for theta in [1u32, 2, 5, size / 3 + 1, size, size + 1] {
                    assert_every_kernel_agrees(&matrix, &input, theta, slots);
                }
            }
            matrix.clear(0, 0);
            let input: Vec<u32> = (0..n).collect();
            assert_every_kernel_agrees(&matrix, &input, 1, slots);
        }
    }

    #[test]
    fn a_matrix_built_at_once_equals_one_set_bit_by_bit() {
        let mut rng = Rng::new(5);
        let slots = 3 * BLOCK * 64 + 100;
        let set_one_by_one = random_matrix(&mut rng, 70, slots, 20);
        let cells: Vec<Vec<CellIndex>> = (0..slots)
            .map(|slot| {
                (0..70)
                    .filter(|&cell| set_one_by_one.get(cell, slot as SegmentSlot))
                    .collect()
            })
            .collect();
        // Empty slots left out, as free slots are.
        let segments: Vec<(SegmentSlot, &[CellIndex])> = (0..)
            .zip(&cells)
            .filter(|(_, cells)| !cells.is_empty())
            .map(|(slot, cells)| (slot, &cells[..]))
            .collect();
        let built = DenseMatrix::build(70, &segments);
        assert_eq!(built.blocks.len(), set_one_by_one.blocks.len());
        assert!(built.blocks == set_one_by_one.blocks);
    }

    #[test]
    fn a_space_of_many_blocks_is_counted_in_parallel_runs_as_in_one() {
        let mut rng = Rng::new(4);
        let slots = (PARALLEL_FROM_BLOCKS + 3) * BLOCK * 64 + 17;
        let matrix = random_matrix(&mut rng, 48, slots, 30);
        let input = rng.distinct_below(48, 24);
        assert_every_kernel_agrees(&matrix, &input, 10, slots);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let sequential =
            one_thread.install(|| matrix.overlaps_reaching(&input, 10, slots, Kernel::detected()));
        assert_eq!(sequential, plain(&matrix, &input, 10, slots));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random spaces: ragged last blocks (any slot count), inputs of any size up to the
        /// whole space, thresholds from 1 to just past the input's size.
        #[test]
        fn kernels_agree_with_the_plain_loop_on_random_spaces(
            n in 1u32..400,
            slots in 1usize..5000,
            density_percent in 0u64..100,
            size_percent in 0u32..=100,
            below_size in 0u32..4,
            seed: u64,
        ) {
            let mut rng = Rng::new(seed);
            let matrix = random_matrix(&mut rng, n, slots, density_percent);
            let size = (n * size_percent / 100).max(1);
            let input = rng.distinct_below(n, size);
            let theta = (size + 1).saturating_sub(below_size).max(1);
            assert_every_kernel_agrees(&matrix, &input, theta, slots);
            assert_every_kernel_agrees(&matrix, &input, 1, slots);
        }
    }
}
