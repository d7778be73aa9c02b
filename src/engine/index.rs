//! The inverted index: from each input bit to the segments that have a synapse on it.
//!
//! Recognition counts, for every segment, how many of its synapses an input turns on. Scanning
//! every segment would cost O(segments × synapses) per query; with the index the cost is the number
//! of postings the input's bits touch, each a single increment of a counter (no branch). Postings
//! are contiguous `u32` slot numbers, so the inner loop streams through memory.

use super::pattern::CellIndex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A segment's place in the space's segment table; reused after the segment disappears.
pub type SegmentSlot = u32;

/// Postings per input bit. A map, not a vector indexed by bit, so that a space of 2^24 bits with
/// few synapses costs memory in proportion to its synapses.
#[derive(Clone, Debug, Default)]
pub struct InvertedIndex {
    postings: HashMap<CellIndex, Vec<SegmentSlot>, BuildHasherDefault<CellHasher>>,
    len: usize,
}

impl InvertedIndex {
    pub fn add(&mut self, cell: CellIndex, slot: SegmentSlot) {
        self.postings.entry(cell).or_default().push(slot);
        self.len += 1;
    }

    /// # Panics
    /// In debug builds, when the posting is absent: the segment tables and the index disagree.
    pub fn remove(&mut self, cell: CellIndex, slot: SegmentSlot) {
        let Some(list) = self.postings.get_mut(&cell) else {
            debug_assert!(false, "no postings for cell {cell}");
            return;
        };
        if let Some(at) = list.iter().position(|&s| s == slot) {
            list.swap_remove(at);
            self.len -= 1;
        } else {
            debug_assert!(false, "segment {slot} not posted on cell {cell}");
        }
        if list.is_empty() {
            self.postings.remove(&cell);
        }
    }

    /// Total postings: the number of synapses in the space.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every segment whose overlap with `input` reaches `theta`, as (slot, overlap) in slot
    /// order, and how many segments the input touched at all. `slots` bounds the slot numbers.
    ///
    /// One counter per slot, reused per thread. An input of at most 255 bits cannot overlap any
    /// segment in more, so byte counters suffice: four times less memory to stream through than
    /// u32 counters, which keeps the counters of a large space in the L1 cache.
    pub fn overlaps_reaching(&self, input: &[CellIndex], theta: u32, slots: usize) -> Overlaps {
        thread_local! {
            static NARROW: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
            static WIDE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        if input.len() <= usize::from(u8::MAX) {
            NARROW.with(|c| self.count_with(input, theta, &mut c.borrow_mut(), slots))
        } else {
            WIDE.with(|c| self.count_with(input, theta, &mut c.borrow_mut(), slots))
        }
    }

    fn count_with<C: Counter>(
        &self,
        input: &[CellIndex],
        theta: u32,
        counts: &mut Vec<C>,
        slots: usize,
    ) -> Overlaps {
        counts.clear();
        counts.resize(slots, C::default());
        for cell in input {
            if let Some(list) = self.postings.get(cell) {
                for &slot in list {
                    counts[slot as usize].increment();
                }
            }
        }
        // Matches are rare: test whole chunks first (this vectorises), then look inside the few
        // chunks that hold one.
        const CHUNK: usize = 32;
        let mut overlaps = Overlaps {
            reaching: Vec::new(),
            touched: counts.iter().filter(|&&c| c.into() > 0).count() as u64,
        };
        for (chunk_index, chunk) in counts.chunks(CHUNK).enumerate() {
            if chunk
                .iter()
                .fold(false, |any, &c| any | (c.into() >= theta))
            {
                for (offset, &count) in chunk.iter().enumerate() {
                    if count.into() >= theta {
                        overlaps
                            .reaching
                            .push(((chunk_index * CHUNK + offset) as SegmentSlot, count.into()));
                    }
                }
            }
        }
        overlaps
    }

    /// Bytes held by the postings (capacity, not length: what the allocator really gave).
    pub fn heap_bytes(&self) -> usize {
        let lists: usize = self
            .postings
            .values()
            .map(|l| l.capacity() * size_of::<SegmentSlot>())
            .sum();
        let table =
            self.postings.capacity() * (size_of::<CellIndex>() + size_of::<Vec<SegmentSlot>>() + 1);
        lists + table
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

/// A per-segment overlap counter.
trait Counter: Copy + Default + Into<u32> {
    fn increment(&mut self);
}

impl Counter for u8 {
    fn increment(&mut self) {
        *self += 1;
    }
}

impl Counter for u32 {
    fn increment(&mut self) {
        *self += 1;
    }
}

/// Cell indices are already uniform integers: one multiply spreads them over the hash's bits,
/// far cheaper than SipHash on the query path.
#[derive(Clone, Copy, Debug, Default)]
pub struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, cell: u32) {
        self.0 = (u64::from(cell) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_finds_the_segments_reaching_theta_with_narrow_and_wide_counters() {
        let mut index = InvertedIndex::default();
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
