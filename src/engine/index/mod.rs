//! The inverted index: from each input bit to the segments that have a synapse on it.
//!
//! Recognition counts, for every segment, how many of its synapses an input turns on. Scanning
//! every segment would cost O(segments × synapses) per query; with an index the cost follows the
//! synapses the input's bits touch. Two layouts serve two kinds of space: postings (per input bit,
//! the list of segment slots: each touched synapse one counter increment) for sparse spaces, and
//! a dense bit matrix counted 64 segments per word ([`DenseMatrix`]) for spaces whose segments
//! cover a sizeable fraction of the input, where it is both smaller and several times faster.

mod dense;
mod kernel;
mod postings;

use super::pattern::CellIndex;
use dense::DenseMatrix;
pub use kernel::Kernel;
use postings::Postings;

/// A segment's place in the space's segment table; reused after the segment disappears.
pub type SegmentSlot = u32;

/// The largest input the dense layout serves: its rows take 8 bytes per input bit per 64
/// segment slots, so a larger input would reserve megabytes before it held a synapse.
pub const MAX_DENSE_INPUT: u32 = 1 << 16;

/// A posting's slot number with room for its list to grow.
const POSTING_BYTES_PER_SYNAPSE: u64 = 8;
/// A map entry for an input bit in use: key, list header, control byte, load-factor slack.
const POSTING_BYTES_PER_CELL: u64 = 48;

/// The most bits of dense matrix a synapse may stand for: 256 bits, 32 bytes.
const DENSE_BITS_PER_SYNAPSE: u64 = 256;

/// The index of one space, in the layout that suits its density.
///
/// A space whose segments suit the dense matrix still starts in postings: the matrix reserves
/// `input_size / 8` bytes for every one of a block's 2048 segment slots (16 MiB for a 65,536-bit
/// space), which the first few patterns would pay alone. The index moves to the matrix once the
/// matrix would take at most 32 bytes per synapse it holds, so the bound holds from the first
/// pattern, not only on average over a full block.
#[derive(Clone, Debug)]
pub struct InvertedIndex {
    layout: Layout,
    len: usize,
    /// The kernel the dense layout counts with.
    kernel: Kernel,
    /// The input size, when the space's segments suit the dense matrix: the layout to move to.
    dense_input: Option<u32>,
    /// One past the highest segment slot ever posted: the slots a matrix would have to cover.
    slots: usize,
}

#[derive(Clone, Debug)]
enum Layout {
    Postings(Postings),
    Dense(DenseMatrix),
}

impl InvertedIndex {
    /// The layout for a space of `input_size` bits whose every segment holds at least
    /// `fewest_synapses`, chosen by the memory it can take, not only by speed.
    ///
    /// The dense matrix spends `input_size / 8` bytes on every segment slot, however few
    /// synapses the segment holds; postings spend about 8 bytes per synapse. Dense is chosen only
    /// where even the sparsest possible segment keeps it within 32 bytes per synapse
    /// (`fewest_synapses · 256 >= input_size`), and the input is at most [`MAX_DENSE_INPUT`]
    /// bits: so no sequence of stores can make the index cost more than that per synapse. (The
    /// standard workload, 12 to 24 synapses per segment on 2048 bits, is dense: its segments
    /// fill to about 117 synapses, 2 bytes each.)
    pub fn for_space(input_size: u32, fewest_synapses: u32) -> InvertedIndex {
        let suits_dense = input_size <= MAX_DENSE_INPUT
            && u64::from(fewest_synapses) * DENSE_BITS_PER_SYNAPSE >= u64::from(input_size);
        InvertedIndex {
            dense_input: suits_dense.then_some(input_size),
            ..InvertedIndex::postings()
        }
    }

    pub fn postings() -> InvertedIndex {
        InvertedIndex {
            layout: Layout::Postings(Postings::default()),
            len: 0,
            kernel: Kernel::detected(),
            dense_input: None,
            slots: 0,
        }
    }

    /// Whether the space's segments suit the dense matrix (whether or not it is in use yet).
    #[cfg(test)]
    fn suits_dense(&self) -> bool {
        self.dense_input.is_some()
    }

    /// Moves the postings into the dense matrix now, if the space suits it: what `add` does by
    /// itself once the matrix is small enough. Returns whether the index is dense.
    pub fn use_dense(&mut self) -> bool {
        if let (Layout::Postings(postings), Some(input_size)) = (&self.layout, self.dense_input) {
            let mut matrix = DenseMatrix::new(input_size);
            for (cell, slot) in postings.entries() {
                matrix.set(cell, slot);
            }
            self.layout = Layout::Dense(matrix);
        }
        self.is_dense()
    }

    /// Whether the dense matrix, holding every slot posted so far, would take at most 32 bytes
    /// per synapse.
    fn dense_fits(&self) -> bool {
        self.dense_input.is_some_and(|input_size| {
            DenseMatrix::bytes_for(input_size, self.slots)
                <= self.len as u64 * DENSE_BITS_PER_SYNAPSE / 8
        })
    }

    /// Counts with `kernel` from now on (by default [`Kernel::detected`]).
    pub fn use_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
    }

    /// The kernel recognition counts with: the dense layout's, or none for postings.
    pub fn kernel(&self) -> Option<Kernel> {
        self.is_dense().then_some(self.kernel)
    }

    pub fn is_dense(&self) -> bool {
        matches!(self.layout, Layout::Dense(_))
    }

    pub fn add(&mut self, cell: CellIndex, slot: SegmentSlot) {
        self.slots = self.slots.max(slot as usize + 1);
        self.len += 1;
        match &mut self.layout {
            Layout::Postings(postings) => {
                postings.add(cell, slot);
                if self.dense_fits() {
                    self.use_dense();
                }
            }
            Layout::Dense(matrix) => matrix.set(cell, slot),
        }
    }

    /// An index of the same space holding exactly `segments` (each live slot's cells, in slot
    /// order), in the layout their counts call for: what start-up builds once every stored
    /// pattern is applied, instead of posting synapses one store at a time.
    pub fn rebuilt(&self, segments: &[(SegmentSlot, &[CellIndex])]) -> InvertedIndex {
        let mut index = InvertedIndex {
            layout: Layout::Postings(Postings::default()),
            len: segments.iter().map(|(_, cells)| cells.len()).sum(),
            kernel: self.kernel,
            dense_input: self.dense_input,
            slots: segments.last().map_or(0, |&(slot, _)| slot as usize + 1),
        };
        match index.dense_input {
            Some(input_size) if index.dense_fits() => {
                index.layout = Layout::Dense(DenseMatrix::build(input_size, segments));
            }
            _ => {
                let Layout::Postings(postings) = &mut index.layout else {
                    unreachable!("made in postings just above")
                };
                for &(slot, cells) in segments {
                    for &cell in cells {
                        postings.add(cell, slot);
                    }
                }
            }
        }
        index
    }

    pub fn remove(&mut self, cell: CellIndex, slot: SegmentSlot) {
        match &mut self.layout {
            Layout::Postings(postings) => postings.remove(cell, slot),
            Layout::Dense(matrix) => matrix.clear(cell, slot),
        }
        self.len -= 1;
    }

    /// Total synapses in the space.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every segment whose overlap with `input` reaches `theta`, as (slot, overlap) in slot
    /// order, and how many segments the input touched at all. `slots` bounds the slot numbers.
    pub fn overlaps_reaching(&self, input: &[CellIndex], theta: u32, slots: usize) -> Overlaps {
        match &self.layout {
            Layout::Postings(postings) => postings.overlaps_reaching(input, theta, slots),
            Layout::Dense(matrix) => matrix.overlaps_reaching(input, theta, slots, self.kernel),
        }
    }

    /// Whether counting `slots` segment slots uses rayon's threads (a large dense space): a caller
    /// that must not block on other threads' work (an async worker) should not count it.
    pub fn counts_in_parallel(&self, slots: usize) -> bool {
        self.is_dense() && DenseMatrix::counts_in_parallel(slots)
    }

    /// The bytes the index takes, estimated in O(1) (postings: a slot number per synapse with
    /// room for growth, and a map entry per input bit in use; dense: its blocks, exactly).
    pub fn estimated_bytes(&self) -> u64 {
        match &self.layout {
            Layout::Postings(postings) => {
                self.len as u64 * POSTING_BYTES_PER_SYNAPSE
                    + postings.cells() as u64 * POSTING_BYTES_PER_CELL
            }
            Layout::Dense(matrix) => matrix.heap_bytes() as u64,
        }
    }

    /// The most bytes one more synapse adds (dense: none, its bit is already there).
    pub fn bytes_per_synapse(&self) -> u64 {
        match &self.layout {
            Layout::Postings(_) => POSTING_BYTES_PER_SYNAPSE + POSTING_BYTES_PER_CELL,
            Layout::Dense(_) => 0,
        }
    }

    /// The bytes the index must allocate before segment `slot` can hold synapses (dense: the
    /// block of slots it falls in, when that is not there yet).
    pub fn bytes_to_hold(&self, slot: SegmentSlot) -> u64 {
        match &self.layout {
            Layout::Postings(_) => 0,
            Layout::Dense(matrix) => matrix.bytes_to_hold(slot),
        }
    }

    /// Heap bytes held (capacities: what the allocator really gave).
    pub fn heap_bytes(&self) -> usize {
        match &self.layout {
            Layout::Postings(postings) => postings.heap_bytes(),
            Layout::Dense(matrix) => matrix.heap_bytes(),
        }
    }
}

/// The outcome of counting: the segments that reached the threshold and how many were touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlaps {
    /// (slot, overlap) for every segment at or above the threshold, by slot.
    pub reaching: Vec<(SegmentSlot, u32)>,
    /// Segments with at least one synapse on an active bit.
    pub touched: u64,
}

impl Overlaps {
    /// Selects from a full list of per-slot overlaps (the plain oracle's output).
    pub fn from_counts(counts: &[u32], theta: u32) -> Overlaps {
        Overlaps {
            reaching: counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c >= theta)
                .map(|(slot, &c)| (slot as SegmentSlot, c))
                .collect(),
            touched: counts.iter().filter(|&&c| c > 0).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_layout_only_where_the_sparsest_segment_keeps_it_within_32_bytes_a_synapse() {
        assert!(InvertedIndex::for_space(2048, 12).suits_dense());
        assert!(InvertedIndex::for_space(2048, 8).suits_dense());
        assert!(!InvertedIndex::for_space(2048, 7).suits_dense());
        // One synapse per segment in a 65,536-bit space would take 8 KiB a synapse densely.
        assert!(!InvertedIndex::for_space(65_536, 1).suits_dense());
        assert!(InvertedIndex::for_space(65_536, 256).suits_dense());
        assert!(!InvertedIndex::for_space(1 << 20, 1 << 20).suits_dense());
        let mut sparse = InvertedIndex::for_space(65_536, 1);
        assert!(
            !sparse.use_dense(),
            "a space that does not suit it stays in postings"
        );
    }

    #[test]
    fn a_dense_space_starts_in_postings_and_moves_once_the_matrix_costs_32_bytes_a_synapse() {
        // 2048 bits: a block of 2048 slots takes 512 KiB, which 16,384 synapses pay for.
        let mut index = InvertedIndex::for_space(2048, 12);
        let mut added = 0u64;
        let mut slot = 0;
        while !index.is_dense() {
            for cell in (0..24).map(|i| (slot * 7 + i * 83) % 2048) {
                index.add(cell, slot);
                added += 1;
                assert!(
                    index.estimated_bytes() <= added * 56,
                    "{} bytes for {added} synapses",
                    index.estimated_bytes()
                );
            }
            slot += 1;
        }
        let bytes = index.heap_bytes() as u64;
        assert!(bytes <= added * 32, "{bytes} bytes for {added} synapses");
        assert!((16_384..16_384 + 24).contains(&added), "{added}");
        // Every posting made it into the matrix.
        let everything: Vec<u32> = (0..2048).collect();
        let overlaps = index.overlaps_reaching(&everything, 24, slot as usize);
        assert_eq!(overlaps.reaching.len() as u32, slot);
    }

    #[test]
    fn counting_finds_the_segments_reaching_theta_with_narrow_and_wide_counters() {
        let mut index = InvertedIndex::postings();
        for (cell, slot) in [(1, 0), (2, 0), (2, 1), (5, 1), (7, 2), (300, 1)] {
            index.add(cell, slot);
        }
        assert_eq!(index.len(), 6);
        let narrow = index.overlaps_reaching(&[2, 5, 9], 2, 3);
        assert_eq!(
            narrow,
            Overlaps {
                reaching: vec![(1, 2)],
                touched: 2
            }
        );
        let wide_input: Vec<u32> = (0..400).collect();
        let wide = index.overlaps_reaching(&wide_input, 1, 3);
        assert_eq!(
            wide,
            Overlaps {
                reaching: vec![(0, 2), (1, 3), (2, 1)],
                touched: 3
            }
        );
        assert_eq!(wide, Overlaps::from_counts(&[2, 3, 1], 1));
        index.remove(2, 1);
        index.remove(7, 2);
        assert_eq!(
            index.overlaps_reaching(&[2, 5, 7], 1, 3),
            Overlaps {
                reaching: vec![(0, 1), (1, 1)],
                touched: 2
            }
        );
        assert_eq!(index.len(), 4);
    }
}
