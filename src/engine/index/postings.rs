//! The sparse layout: for each input bit, the slots of the segments with a synapse on it.
//!
//! Counting costs one increment per synapse the input's bits touch, and memory follows the
//! synapses, so it serves spaces of any size; large inputs with few synapses per segment use it.

use super::{Overlaps, SegmentSlot};
use crate::engine::pattern::CellIndex;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Postings per input bit. A map, not a vector indexed by bit, so that a space of 2^24 bits with
/// few synapses costs memory in proportion to its synapses. Postings are contiguous `u32` slot
/// numbers, so the counting loop streams through memory.
#[derive(Clone, Debug, Default)]
pub(super) struct Postings {
    postings: HashMap<CellIndex, Vec<SegmentSlot>, BuildHasherDefault<CellHasher>>,
}

impl Postings {
    pub(super) fn add(&mut self, cell: CellIndex, slot: SegmentSlot) {
        self.postings.entry(cell).or_default().push(slot);
    }

    /// # Panics
    /// In debug builds, when the posting is absent: the segment tables and the index disagree.
    pub(super) fn remove(&mut self, cell: CellIndex, slot: SegmentSlot) {
        let Some(list) = self.postings.get_mut(&cell) else {
            debug_assert!(false, "no postings for cell {cell}");
            return;
        };
        if let Some(at) = list.iter().position(|&s| s == slot) {
            list.swap_remove(at);
        } else {
            debug_assert!(false, "segment {slot} not posted on cell {cell}");
        }
        if list.is_empty() {
            self.postings.remove(&cell);
        }
    }

    /// One counter per slot, reused per thread. An input of at most 255 bits cannot overlap any
    /// segment in more, so byte counters suffice: four times less memory to stream through than
    /// u32 counters, which keeps the counters of a large space in the L1 cache.
    pub(super) fn overlaps_reaching(
        &self,
        input: &[CellIndex],
        theta: u32,
        slots: usize,
    ) -> Overlaps {
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

    pub(super) fn heap_bytes(&self) -> usize {
        let lists: usize = self
            .postings
            .values()
            .map(|l| l.capacity() * size_of::<SegmentSlot>())
            .sum();
        let table =
            self.postings.capacity() * (size_of::<CellIndex>() + size_of::<Vec<SegmentSlot>>() + 1);
        lists + table
    }

    /// Every posting, as (input bit, segment slot), in no particular order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (CellIndex, SegmentSlot)> + '_ {
        self.postings
            .iter()
            .flat_map(|(&cell, slots)| slots.iter().map(move |&slot| (cell, slot)))
    }

    /// Input bits with at least one posting.
    pub(super) fn cells(&self) -> usize {
        self.postings.len()
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
