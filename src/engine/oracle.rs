//! The plain recogniser: one roaring bitmap per segment and an intersection count each.
//!
//! Obviously correct and slow (it visits every segment), it is the oracle the inverted index is
//! tested and benchmarked against. It builds its bitmaps from the segment tables, not from the
//! index, so a bug in maintaining the postings shows up as a disagreement.

use super::EngineError;
use super::index::Overlaps;
use super::space::{Query, Recognition, Space};
use roaring::RoaringBitmap;

/// Each live segment's synapses as a bitmap, by slot.
pub struct PlainIndex {
    segments: Vec<Option<RoaringBitmap>>,
}

impl PlainIndex {
    pub fn build(space: &Space) -> PlainIndex {
        let segments = space
            .synapses_by_slot()
            .into_iter()
            .map(|synapses| synapses.map(|cells| cells.into_iter().collect()))
            .collect();
        PlainIndex { segments }
    }

    /// Every segment slot's overlap with the input.
    pub fn overlaps(&self, input: &RoaringBitmap) -> Vec<u32> {
        self.segments
            .iter()
            .map(|segment| {
                segment
                    .as_ref()
                    .map_or(0, |bits| bits.intersection_len(input) as u32)
            })
            .collect()
    }

    /// Recognition with overlaps from the bitmaps.
    pub fn recognize(&self, space: &Space, query: &Query) -> Result<Recognition, EngineError> {
        let input: RoaringBitmap = query.active.cells().iter().copied().collect();
        let overlaps = self.overlaps(&input);
        space.recognize_with(query, |theta| Overlaps::from_counts(&overlaps, theta))
    }
}
