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

    /// Adds 1 to `counts[slot]` for every synapse of every segment on an active bit of `input`.
    pub fn count_overlaps(&self, input: &[CellIndex], counts: &mut [u32]) {
        for cell in input {
            if let Some(list) = self.postings.get(cell) {
                for &slot in list {
                    counts[slot as usize] += 1;
                }
            }
        }
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

/// Runs `f` with a zeroed counter per segment slot, reused by each thread across queries so that
/// recognition allocates nothing in the steady state.
pub fn with_counters<R>(slots: usize, f: impl FnOnce(&mut [u32]) -> R) -> R {
    thread_local! {
        static COUNTERS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    }
    COUNTERS.with(|cell| {
        let mut counters = cell.borrow_mut();
        counters.clear();
        counters.resize(slots, 0);
        f(&mut counters)
    })
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
    fn counting_adds_one_per_active_synapse() {
        let mut index = InvertedIndex::default();
        for (cell, slot) in [(1, 0), (2, 0), (2, 1), (5, 1), (7, 2)] {
            index.add(cell, slot);
        }
        assert_eq!(index.len(), 5);
        let counts = with_counters(3, |c| {
            index.count_overlaps(&[2, 5, 9], c);
            c.to_vec()
        });
        assert_eq!(counts, vec![1, 2, 0]);
        index.remove(2, 1);
        index.remove(7, 2);
        let counts = with_counters(3, |c| {
            index.count_overlaps(&[2, 5, 7], c);
            c.to_vec()
        });
        assert_eq!(counts, vec![1, 1, 0]);
        assert_eq!(index.len(), 3);
    }
}
