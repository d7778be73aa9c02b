//! A stored pattern's active bits, packed for keeping: the gaps between successive cells as
//! LEB128 varints.
//!
//! Every pattern's bits stay in memory (to answer for it, to recognise a repeated store, to
//! calibrate), a million of them and more, while they are read only now and then. As `u32`s the
//! standard workload's 40 bits of 2048 take 160 bytes; as gaps, about one byte each. The encoding
//! is canonical (cells are sorted and distinct), so two patterns are equal exactly when their
//! bytes are, and the bytes can be hashed in their place.

use crate::engine::pattern::CellIndex;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PackedCells(Box<[u8]>);

/// The low seven bits of a varint byte hold value; the high bit says another byte follows.
const MORE: u8 = 0x80;

impl PackedCells {
    /// Packs sorted, distinct cells.
    pub(super) fn pack(cells: &[CellIndex]) -> PackedCells {
        let gaps = || {
            cells
                .iter()
                .scan(None, |previous: &mut Option<CellIndex>, &cell| {
                    let gap = previous.map_or(cell, |p| cell - p - 1);
                    *previous = Some(cell);
                    Some(gap)
                })
        };
        // Sized first, so the box is allocated once and exactly.
        let size: usize = gaps().map(varint_len).sum();
        let mut bytes = Vec::with_capacity(size);
        for mut gap in gaps() {
            while gap >= u32::from(MORE) {
                bytes.push(gap as u8 | MORE);
                gap >>= 7;
            }
            bytes.push(gap as u8);
        }
        debug_assert_eq!(bytes.len(), size);
        PackedCells(bytes.into_boxed_slice())
    }

    /// The cells, in order.
    pub(super) fn cells(&self) -> impl Iterator<Item = CellIndex> + '_ {
        let mut bytes = self.0.iter();
        let mut next: Option<CellIndex> = None;
        std::iter::from_fn(move || {
            let (mut gap, mut shift) = (0u32, 0);
            loop {
                let byte = *bytes.next()?;
                gap |= u32::from(byte & !MORE) << shift;
                if byte & MORE == 0 {
                    break;
                }
                shift += 7;
            }
            let cell = next.map_or(gap, |n| n + gap);
            next = Some(cell + 1);
            Some(cell)
        })
    }

    pub(super) fn unpack(&self) -> Vec<CellIndex> {
        self.cells().collect()
    }

    /// How many cells: one varint ends in each byte without the continuation bit.
    pub(super) fn len(&self) -> usize {
        self.0.iter().filter(|&&byte| byte & MORE == 0).count()
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

fn varint_len(value: u32) -> usize {
    (32 - value.leading_zeros() as usize).div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_gaps_take_a_byte_and_large_ones_more() {
        let packed = PackedCells::pack(&[0, 1, 129, 130 + 16_384, (1 << 24) - 1]);
        // 0 | gap 0 | gap 127 | gap 16_384 (three bytes) | gap ~16.7M (four bytes)
        assert_eq!(packed.heap_bytes(), 1 + 1 + 1 + 3 + 4);
        assert_eq!(packed.unpack(), [0, 1, 129, 130 + 16_384, (1 << 24) - 1]);
        assert_eq!(packed.len(), 5);
    }

    proptest! {
        #[test]
        fn packing_round_trips_and_equal_bytes_mean_equal_cells(
            a in proptest::collection::btree_set(0u32..(1 << 24), 1..200),
            b in proptest::collection::btree_set(0u32..4096, 1..60),
        ) {
            let a: Vec<u32> = a.into_iter().collect();
            let b: Vec<u32> = b.into_iter().collect();
            let (packed_a, packed_b) = (PackedCells::pack(&a), PackedCells::pack(&b));
            prop_assert_eq!(packed_a.unpack(), a.clone());
            prop_assert_eq!(packed_a.len(), a.len());
            prop_assert_eq!(packed_b.unpack(), b.clone());
            prop_assert_eq!(packed_a == packed_b, a == b);
        }
    }
}
