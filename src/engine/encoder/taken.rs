//! The bits a record's fields have taken so far: each key hashes to a bit and probes on past
//! bits an earlier key holds, so every field gives exactly its share, distinct from the others'.

use super::MAX_TEXT_WORK;
use super::hash::{combine, onto};
use super::projection;

/// The bits a record's fields have taken so far.
pub(super) struct Taken {
    pub(super) words: Vec<u64>,
    pub(super) count: u32,
    /// Distinct words the record's text fields have weighed so far.
    pub(super) text_words: u64,
}

/// The largest bitset [`Taken::sorted`] scans rather than sorting (65,536 bits).
const SCANNED_WORDS: usize = 1024;

/// Probes a key makes before it takes the next free bit after its last probe.
const PROBES: u64 = 8;

impl Taken {
    pub(super) fn new(n: u32) -> Taken {
        Taken {
            words: vec![0; n.div_ceil(64) as usize],
            count: 0,
            text_words: 0,
        }
    }

    /// Distinct words the record's texts may still have ([`MAX_TEXT_WORK`] over `n`).
    pub(super) fn text_words_left(&self, n: u32) -> u64 {
        (MAX_TEXT_WORK / u64::from(n)).saturating_sub(self.text_words)
    }

    /// Every bit taken, sorted: read off the bitset where it is small (a few hundred words
    /// scan faster than a sort), sorted from the fields' lists where it is large.
    pub(super) fn sorted(&self, fields: &[Vec<u32>]) -> Vec<u32> {
        let mut active = Vec::with_capacity(self.count as usize);
        if self.words.len() <= SCANNED_WORDS {
            for (index, &word) in self.words.iter().enumerate() {
                let mut rest = word;
                while rest != 0 {
                    active.push(index as u32 * 64 + rest.trailing_zeros());
                    rest &= rest - 1;
                }
            }
        } else {
            active.extend(fields.iter().flatten().copied());
            active.sort_unstable();
        }
        active
    }

    pub(super) fn has(&self, bit: u32) -> bool {
        self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    pub(super) fn take(&mut self, bit: u32) {
        self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        self.count += 1;
    }

    /// The bit a hashed key lands on: its first free probe, or when the space is crowded the
    /// next free bit after its last probe. A free bit exists: the fields' shares sum to at
    /// most `n`.
    pub(super) fn place(&mut self, slot: u64, n: u32) -> u32 {
        let mut bit = 0;
        for probe in 0..PROBES {
            bit = onto(combine(slot, probe), n);
            if !self.has(bit) {
                self.take(bit);
                return bit;
            }
        }
        while self.has(bit) {
            bit = (bit + 1) % n;
        }
        self.take(bit);
        bit
    }

    /// The `share` strongest outputs not yet taken.
    pub(super) fn rank(&mut self, scores: &[f64], share: u32, into: &mut Vec<u32>) {
        let order = projection::strongest(scores, (share + self.count) as usize);
        for bit in order {
            if into.len() == share as usize {
                break;
            }
            if !self.has(bit) {
                self.take(bit);
                into.push(bit);
            }
        }
    }
}
