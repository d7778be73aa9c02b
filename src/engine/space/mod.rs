//! A space: the neurons that listen to one input space, their segments, learning and forgetting.
//!
//! Writes come in two steps so that the service can make them durable in between: planning
//! ([`plan`]) decides everything (which synapses, which segment, which id) from `&self` without
//! changing anything, the caller commits the plan to storage, then applying it ([`apply`]) makes
//! it visible. Applying a plan makes no decisions, so replaying stored plans at start-up rebuilds
//! exactly the same segments.
//!
//! `Space` owns its tables and keeps their fields private: its children (planning, applying,
//! reports, recognition) are the only code that sees them, so every invariant between the
//! tables (the index posts exactly the segments' synapses, the counts match the tables) is kept
//! in this folder.

mod apply;
mod calibration;
mod fill;
mod packed;
mod plan;
mod recognition;
mod report;
mod slots;
mod sorted;

pub use calibration::{Calibration, CalibrationLine, Calibrator};
pub use fill::FillReport;
pub use plan::{Planned, Planner, StorePlan, StoreRequest};
pub use recognition::{DEFAULT_LIMIT, Match, Query, Recognition};
pub use report::{Counts, NeuronReport, NeuronSummary, NoiseMiss, SegmentReport, SpaceReport};

use super::index::{InvertedIndex, Kernel, SegmentSlot};
use super::metadata::Metadata;
use super::params::{SpaceParams, SpaceTheory};
use super::pattern::{CellIndex, Name, Pattern};
use crate::theory::{self, Probability};
use packed::PackedCells;
use slots::{Slot, Slots};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::RwLock;

type NeuronSlot = Slot;

/// A hash map for the lookups recognition and learning make per pattern. foldhash, seeded at
/// random per map, costs a fraction of std's SipHash for short keys (recognition looks up every
/// pattern of a matched segment), and the random seed still keeps a client from choosing names
/// that collide on purpose.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One pattern learned by a neuron: its bits and its segment (which keeps the synapses sampled
/// from them).
#[derive(Clone, Debug, PartialEq)]
struct StoredPattern {
    active: PackedCells,
    segment: u32,
    metadata: Option<Metadata>,
}

#[derive(Clone, Debug)]
struct Neuron {
    name: Name,
    /// (segment number, slot), by number: the newest segment is last.
    segments: Vec<(u32, SegmentSlot)>,
    next_segment: u32,
    patterns: FastMap<Name, StoredPattern>,
    /// The ids of `patterns`, found by the hash of their packed bits under `content_hasher`: a
    /// repeated store is recognised without a second copy of every pattern's bits as a key.
    by_content: hashbrown::HashTable<Name>,
    content_hasher: foldhash::fast::RandomState,
    next_pattern_number: u64,
    /// 1 − prod(1 − p_i) over the segments, at the space's nominal a and threshold.
    false_match: Probability,
}

#[derive(Clone, Debug)]
struct Segment {
    neuron: NeuronSlot,
    number: u32,
    /// The cells the segment's patterns sampled (the union of their synapses), sorted. How many
    /// patterns use each cell is not kept: only forgetting needs it, and it recounts from
    /// `pattern_synapses` (a count per synapse would double the table, the engine's largest).
    synapses: Vec<CellIndex>,
    /// Ids of the segment's patterns, in the order they were stored, each with how many synapses
    /// it sampled: what a report lists and what recognition searches for the pattern an input
    /// resembles most.
    patterns: Vec<(Name, u32)>,
    /// The patterns' own synapses (each pattern's sorted cells, one pattern after another in the
    /// order of `patterns`), kept to forget a pattern and to find the one an input resembles.
    /// One list per segment rather than one per pattern: a matched segment's patterns are read
    /// in one sweep of memory, and a pattern costs no allocation of its own.
    pattern_synapses: Vec<CellIndex>,
    /// Eq. 3 at the segment's synapse count, the space's nominal a and threshold.
    false_match: Probability,
}

impl Neuron {
    fn new(name: Name) -> Neuron {
        Neuron {
            name,
            segments: Vec::new(),
            next_segment: 0,
            patterns: FastMap::default(),
            by_content: hashbrown::HashTable::new(),
            content_hasher: foldhash::fast::RandomState::default(),
            next_pattern_number: 1,
            false_match: Probability::ZERO,
        }
    }

    /// The id of the stored pattern with exactly these bits, if there is one.
    fn id_of_content(&self, packed: &PackedCells) -> Option<&Name> {
        let hash = self.content_hasher.hash_one(packed);
        self.by_content
            .find(hash, |id| self.patterns[id].active == *packed)
    }

    fn insert_pattern(&mut self, id: Name, stored: StoredPattern) {
        let hash = self.content_hasher.hash_one(&stored.active);
        self.patterns.insert(id.clone(), stored);
        let Neuron {
            patterns,
            by_content,
            content_hasher,
            ..
        } = self;
        by_content.insert_unique(hash, id, |id| content_hasher.hash_one(&patterns[id].active));
    }

    fn remove_pattern(&mut self, id: &Name) -> Option<StoredPattern> {
        let stored = self.patterns.remove(id)?;
        let hash = self.content_hasher.hash_one(&stored.active);
        if let Ok(entry) = self.by_content.find_entry(hash, |listed| listed == id) {
            entry.remove();
        }
        Some(stored)
    }
}

impl Segment {
    /// Each pattern's id with its own synapses, in the order stored.
    fn pattern_runs(&self) -> impl Iterator<Item = (&Name, &[CellIndex])> {
        let mut rest = &self.pattern_synapses[..];
        self.patterns.iter().map(move |(id, count)| {
            let (own, after) = rest.split_at(*count as usize);
            rest = after;
            (id, own)
        })
    }

    /// Whether a pattern of the segment other than the one at `except` (in `patterns`) sampled
    /// `cell`.
    fn sampled_by_another(&self, cell: CellIndex, except: usize) -> bool {
        self.pattern_runs()
            .enumerate()
            .any(|(at, (_, own))| at != except && own.binary_search(&cell).is_ok())
    }

    /// Where pattern `id` stands in `patterns`, and the range of its synapses.
    fn pattern_run(&self, id: &Name) -> Option<(usize, std::ops::Range<usize>)> {
        let mut start = 0;
        for (at, (stored, count)) in self.patterns.iter().enumerate() {
            let end = start + *count as usize;
            if stored == id {
                return Some((at, start..end));
            }
            start = end;
        }
        None
    }
}

/// Heap bytes a space holds for its synapses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// The inverted index's postings.
    pub index: usize,
    /// The segments' (cell, uses) tables.
    pub segment_tables: usize,
    /// Each stored pattern's own synapse list (needed to forget it).
    pub pattern_synapses: usize,
}

impl MemoryUse {
    pub fn synapse_bytes(&self) -> usize {
        self.index + self.segment_tables + self.pattern_synapses
    }
}

/// A stored pattern as callers see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PatternView {
    pub id: Name,
    pub neuron: Name,
    pub segment: u32,
    pub active: Pattern,
    pub synapses: Vec<CellIndex>,
    pub segment_false_match: Probability,
    pub neuron_false_match: Probability,
    /// What the application stored with the pattern, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// The neurons of one input space.
#[derive(Debug)]
pub struct Space {
    name: Name,
    params: SpaceParams,
    /// The most synapses a segment may hold and still meet `max_false_match` (eq. 3 grows with
    /// the synapse count, so the learning rule is a comparison with this number).
    max_synapses_per_segment: u32,
    neuron_slots: BTreeMap<Name, NeuronSlot>,
    neurons: Slots<Neuron>,
    segments: Slots<Segment>,
    index: InvertedIndex,
    /// False while start-up applies stored patterns: the index is then built once, at the end
    /// ([`Space::finish_loading`]), from the segments.
    posting: bool,
    pattern_count: u64,
    /// Bytes of every stored pattern's own lists (active bits and sampled synapses) and metadata.
    pattern_bytes: u64,
    /// Eq. 3 per synapse count at the nominal a and threshold, filled as segments grow.
    false_match_by_synapses: HashMap<u32, Probability>,
    /// ln of the expected false matches of a query, by (input size, threshold); cleared by
    /// every write.
    expected_false_matches: RwLock<HashMap<(u64, u32), f64>>,
    /// How full the segments are, kept as they change.
    fill: fill::Fill,
    /// The theory for the parameters, computed once.
    theory: SpaceTheory,
}

impl Space {
    pub fn new(name: Name, params: SpaceParams) -> Space {
        let max_synapses_per_segment = largest_count_meeting_target(&params);
        let fill = fill::Fill::new(
            params.input_size,
            params.synapses_per_pattern.min(params.active_bits),
            max_synapses_per_segment,
        );
        Space {
            name,
            max_synapses_per_segment,
            neuron_slots: BTreeMap::new(),
            neurons: Slots::default(),
            segments: Slots::default(),
            // A stored pattern has at least theta active bits, so every segment holds at least
            // min(s, theta) synapses.
            index: InvertedIndex::for_space(
                params.input_size,
                params.synapses_per_pattern.min(params.threshold),
            ),
            posting: true,
            pattern_count: 0,
            pattern_bytes: 0,
            false_match_by_synapses: HashMap::new(),
            expected_false_matches: RwLock::default(),
            fill,
            theory: SpaceTheory::of(&params),
            params,
        }
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn params(&self) -> &SpaceParams {
        &self.params
    }

    fn neuron(&self, name: &Name) -> Option<&Neuron> {
        let slot = *self.neuron_slots.get(name)?;
        Some(self.neurons.get(slot))
    }

    fn segment(&self, slot: SegmentSlot) -> &Segment {
        self.segments.get(slot)
    }

    /// Segments in the space: what the cost of a recognition grows with.
    pub fn segment_count(&self) -> u64 {
        (self.segments.slot_count() - self.segments.free_count()) as u64
    }

    /// Each segment slot's synapses, by slot (`None` for a free slot): what the plain oracle
    /// builds its bitmaps from, independently of the index.
    pub fn synapses_by_slot(&self) -> Vec<Option<Vec<CellIndex>>> {
        self.segments
            .by_slot()
            .map(|segment| Some(segment?.synapses.clone()))
            .collect()
    }

    /// Heap bytes held for synapses, by structure (capacities: what the allocator gave).
    pub fn memory(&self) -> MemoryUse {
        let segment_tables = self.segments.capacity() * size_of::<Option<Segment>>()
            + self
                .segments
                .iter()
                .map(|(_, s)| s.synapses.capacity() * size_of::<CellIndex>())
                .sum::<usize>();
        let pattern_synapses = self
            .segments
            .iter()
            .map(|(_, s)| s.pattern_synapses.capacity() * size_of::<CellIndex>())
            .sum();
        MemoryUse {
            index: self.index.heap_bytes(),
            segment_tables,
            pattern_synapses,
        }
    }

    /// The bytes the space takes in memory, estimated from its counts in O(1): the index, the
    /// segment and neuron tables, and the stored patterns with their maps. The service checks
    /// its memory budget against this before each write, so the estimate leans high.
    pub fn estimated_bytes(&self) -> u64 {
        let synapses = self.index.len() as u64;
        self.index.estimated_bytes()
            + (self.segments.slot_count() * size_of::<Option<Segment>>()) as u64
            + synapses * SEGMENT_BYTES_PER_SYNAPSE
            + self.neurons.slot_count() as u64 * NEURON_BYTES
            + self.pattern_count * PATTERN_BYTES
            + self.pattern_bytes
            + self
                .params
                .encoder
                .as_ref()
                .map_or(0, |encoder| encoder.memory_bytes() as u64)
    }

    /// The most bytes applying `plans` (in order, against the space as it is) can add to
    /// [`Space::estimated_bytes`]: their patterns, their synapses in the segment tables and the
    /// index, and the new neurons and segments they open, with the dense index's blocks for the
    /// slots those segments will take.
    pub fn estimated_cost<'a>(&self, plans: impl IntoIterator<Item = &'a StorePlan>) -> u64 {
        let mut bytes = 0;
        let mut new_neurons: HashSet<&Name> = HashSet::new();
        let mut new_segments: HashSet<(&Name, u32)> = HashSet::new();
        for plan in plans {
            bytes += PATTERN_BYTES
                + own_bytes(plan.active.len(), &plan.synapses, plan.metadata.as_ref())
                + plan.synapses.len() as u64
                    * (SEGMENT_BYTES_PER_SYNAPSE + self.index.bytes_per_synapse());
            let neuron = self.neuron(&plan.neuron);
            if neuron.is_none() && new_neurons.insert(&plan.neuron) {
                bytes += NEURON_BYTES;
            }
            let segment_exists = neuron.is_some_and(|n| {
                n.segments
                    .binary_search_by_key(&plan.segment, |&(number, _)| number)
                    .is_ok()
            });
            if !segment_exists && new_segments.insert((&plan.neuron, plan.segment)) {
                bytes += size_of::<Option<Segment>>() as u64;
            }
        }
        // New segments take the freed slots first, then slots at the end of the table.
        let beyond_free = new_segments
            .len()
            .saturating_sub(self.segments.free_count());
        if beyond_free > 0 {
            let last = (self.segments.slot_count() + beyond_free - 1) as SegmentSlot;
            bytes += self.index.bytes_to_hold(last);
        }
        bytes
    }

    /// Whether recognition counts with the dense bit matrix (true) or with postings. A space
    /// whose segments suit the matrix starts in postings and moves to it by itself once the
    /// matrix would take at most 32 bytes per synapse.
    pub fn is_dense(&self) -> bool {
        self.index.is_dense()
    }

    /// Moves the index to the dense matrix now, if the space's segments suit it; returns whether
    /// it is dense. For comparing and testing the layouts: the index moves by itself.
    pub fn use_dense_layout(&mut self) -> bool {
        self.index.use_dense()
    }

    /// Whether a recognition here splits its counting across rayon's threads.
    pub fn counts_in_parallel(&self) -> bool {
        self.index.counts_in_parallel(self.segments.slot_count())
    }

    /// The counting kernel recognition uses (dense spaces), or `None` (postings).
    pub fn kernel(&self) -> Option<Kernel> {
        self.index.kernel()
    }

    /// Counts with `kernel` instead of the default one: to compare kernels, or to test
    /// each one.
    pub fn use_kernel(&mut self, kernel: Kernel) {
        self.index.use_kernel(kernel);
    }

    /// The number of synapses in the space.
    pub fn synapse_count(&self) -> usize {
        self.index.len()
    }
}

/// Heap bytes per synapse in a segment's table of cells (four, kept at its exact size), with the
/// allocator's rounding of that table and of the patterns' own synapse lists (counted by
/// [`own_bytes`] at four a cell): a block is rounded up by at most a quarter.
const SEGMENT_BYTES_PER_SYNAPSE: u64 = 8;
/// A neuron's slot, name, maps and bookkeeping, beyond its patterns.
const NEURON_BYTES: u64 = 256;
/// A stored pattern's entries in its neuron's map by id (56 bytes) and content index (16), each
/// doubled for a table just grown, its entry in its segment's list (24) and its id (one shared
/// allocation, up to 128 bytes with its counts), beyond its cells.
const PATTERN_BYTES: u64 = 336;

/// The bytes of a pattern's own lists and metadata, beyond [`PATTERN_BYTES`]: four a cell, though
/// its active bits are kept packed (about one byte a cell), so that the estimate leans high for
/// any spread of bits.
fn own_bytes(active_bits: usize, synapses: &[CellIndex], metadata: Option<&Metadata>) -> u64 {
    ((active_bits + synapses.len()) * size_of::<CellIndex>() + metadata.map_or(0, Metadata::len))
        as u64
}

/// The largest synapse count whose false-match probability stays at or under the target; at least
/// one pattern's worth, which `SpaceParams::new` guarantees meets it. Eq. 3 grows with the
/// synapse count, so the counts that meet the target are the ones below a boundary.
fn largest_count_meeting_target(params: &SpaceParams) -> u32 {
    let target = params.max_false_match.ln();
    let meets = |count: u64| params.segment_false_match(count as u32).ln() <= target;
    let one_pattern = params.synapses_per_pattern.min(params.active_bits);
    let n = u64::from(params.input_size);
    if meets(n) {
        return params.input_size;
    }
    theory::largest_satisfying(one_pattern.into(), n, meets) as u32
}
