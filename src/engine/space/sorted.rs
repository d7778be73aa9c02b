//! Sorted, distinct cell lists: how segments and plans hold synapses, merged without sorting.

use crate::engine::pattern::CellIndex;

/// |a ∩ b| for sorted, distinct slices.
pub(super) fn intersection_len(a: &[CellIndex], b: &[CellIndex]) -> usize {
    // Branch-free steps: which side advances is data the CPU cannot predict, and a mispredicted
    // branch per step costs more than the arithmetic.
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        shared += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    shared
}

/// |a ∪ b| for sorted, distinct slices.
#[cfg(test)]
fn union_len(a: &[CellIndex], b: &[CellIndex]) -> usize {
    a.len() + b.len() - intersection_len(a, b)
}

/// Whether |held ∪ synapses| stays within `limit`, for sorted, distinct slices. Counted until the
/// limit is passed: a full segment is ruled out after a few of the pattern's synapses, where a
/// whole merge with each segment of the neuron, for every plan of a batch, was a quarter of a
/// batch store's time.
pub(super) fn fits_within(held: &[CellIndex], synapses: &[CellIndex], limit: usize) -> bool {
    let mut union = held.len();
    union <= limit
        && synapses.iter().all(|cell| {
            if held.binary_search(cell).is_err() {
                union += 1;
            }
            union <= limit
        })
}

/// The sorted union of two sorted, distinct slices.
pub(super) fn merge_sorted(a: &[CellIndex], b: &[CellIndex]) -> Vec<CellIndex> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Each merge against sets, the plain way, on every pair of small sorted subsets.
    #[test]
    fn merges_agree_with_set_operations() {
        let subsets: Vec<Vec<CellIndex>> = (0u32..64)
            .map(|bits| (0..6).filter(|b| bits & (1 << b) != 0).collect())
            .collect();
        for a in &subsets {
            for b in &subsets {
                let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
                assert_eq!(intersection_len(a, b), sa.intersection(&sb).count());
                assert_eq!(union_len(a, b), sa.union(&sb).count());
                for limit in 0..=12 {
                    assert_eq!(fits_within(a, b, limit), union_len(a, b) <= limit);
                }
                let union: Vec<CellIndex> = sa.union(&sb).map(|&&c| c).collect();
                assert_eq!(merge_sorted(a, b), union);
            }
        }
    }
}
