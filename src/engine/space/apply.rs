//! Applying plans, forgetting and deleting: the only code that changes a space's tables.
//!
//! Nothing here decides anything a store's plan did not already decide, and every check that
//! could refuse a forget or a deletion runs before the first change, so a committed write always
//! applies.
//!
//! A plan reaches the tables and the index only as a [`CheckedPlan`], which only
//! [`Space::check_plan`] makes. Plans come from the planner, but also from stored rows and from
//! other replicas' log entries, which a damaged database, a second process on the same file or a
//! hand-edited row can make wrong: a synapse past the input would index out of bounds, and an
//! over-full segment would silently break the false-match limit the space promises. So every
//! plan is checked against the rules the planner keeps, whatever its source.

use super::packed::PackedCells;
use super::sorted::intersection_len;
use super::{Neuron, NeuronSlot, Segment, Space, StorePlan, StoredPattern, own_bytes};
use crate::engine::EngineError;
use crate::engine::index::SegmentSlot;
use crate::engine::pattern::{CellIndex, Name};
use crate::theory::Probability;
use std::sync::PoisonError;

/// A plan that keeps every rule of the space it was checked against, at the state it was checked
/// in: the only form in which a plan changes the tables. Its field is private, so only
/// [`Space::check_plan`] makes one.
#[derive(Debug)]
pub(super) struct CheckedPlan {
    plan: StorePlan,
    /// The plan's bits packed as the neuron will keep them (packed once, for the check and the
    /// table alike).
    packed: PackedCells,
}

impl Space {
    /// Makes a planned store visible. Plans must be applied in the order they were made; one that
    /// breaks the space's rules (possible only for a plan read back from storage) is refused
    /// with nothing changed.
    pub fn apply_store(&mut self, plan: StorePlan) -> Result<(), EngineError> {
        let checked = self.check_plan(plan)?;
        let slot = self.apply_store_quietly(checked);
        self.refresh_neuron(slot);
        Ok(())
    }

    /// Applies plans in order, refreshing each touched neuron's probability once at the end
    /// (start-up replays millions of plans; a neuron's refresh costs one step per segment).
    ///
    /// Each plan is checked against the state the ones before it left. On the first that breaks
    /// a rule the rest are not applied and its error is returned; the ones before it stay, so a
    /// caller that gets an error discards the space (start-up) or reloads it (a replica).
    pub fn apply_stores(&mut self, plans: Vec<StorePlan>) -> Result<(), EngineError> {
        let mut touched = Vec::with_capacity(plans.len());
        let mut outcome = Ok(());
        for plan in plans {
            match self.check_plan(plan) {
                Ok(checked) => touched.push(self.apply_store_quietly(checked)),
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            self.refresh_neuron(slot);
        }
        outcome
    }

    /// Applies plans read back at start-up: as [`Space::apply_stores`], but the index and the
    /// neurons' probabilities are left to [`Space::finish_loading`], called once every plan is
    /// in. Start-up hands plans over in chunks: a neuron with patterns in most of them would
    /// otherwise be refreshed once per chunk, and every synapse would set a bit at a random
    /// place of the whole index (at ten million patterns, half a gigabyte). Nothing may read the
    /// space until `finish_loading`.
    pub fn apply_stores_unrefreshed(&mut self, plans: Vec<StorePlan>) -> Result<(), EngineError> {
        self.posting = false;
        for plan in plans {
            let checked = self.check_plan(plan)?;
            self.apply_store_quietly(checked);
        }
        Ok(())
    }

    /// Builds the index from the segments (block by block, on every core) and computes every
    /// neuron's probability, after [`Space::apply_stores_unrefreshed`].
    pub fn finish_loading(&mut self) {
        if !self.posting {
            let segments: Vec<(SegmentSlot, &[CellIndex])> = self
                .segments
                .iter()
                .map(|(slot, segment)| (slot, &segment.synapses[..]))
                .collect();
            let index = self.index.rebuilt(&segments);
            self.index = index;
            self.posting = true;
        }
        let slots: Vec<NeuronSlot> = self.neuron_slots.values().copied().collect();
        for slot in slots {
            self.refresh_neuron(slot);
        }
    }

    /// Checks a plan against every rule the planner keeps, at the space's current state: its
    /// pattern fits the input and reaches the threshold; its synapses are the sorted, distinct
    /// sample of the pattern's own bits the space takes; its id and bits are new to the neuron;
    /// and its segment stays within the learning limit (a segment's first pattern may exceed it,
    /// as planning allows) and the neuron within its segment count.
    pub(super) fn check_plan(&self, plan: StorePlan) -> Result<CheckedPlan, EngineError> {
        let packed = PackedCells::pack(plan.active.cells());
        match self.plan_fault(&plan, &packed) {
            None => Ok(CheckedPlan { plan, packed }),
            Some(reason) => Err(EngineError::InvalidPlan {
                neuron: plan.neuron,
                id: plan.id,
                reason,
            }),
        }
    }

    /// What is wrong with `plan`, if anything.
    fn plan_fault(&self, plan: &StorePlan, packed: &PackedCells) -> Option<String> {
        let params = &self.params;
        if let Err(error) = plan.active.check_fits(params.input_size) {
            return Some(error.to_string());
        }
        if plan.active.len() < params.threshold as usize {
            return Some(format!(
                "it has {} active bits, fewer than the threshold {}",
                plan.active.len(),
                params.threshold
            ));
        }
        let sampled = (params.synapses_per_pattern as usize).min(plan.active.len());
        if plan.synapses.len() != sampled {
            return Some(format!(
                "it has {} synapses where the space samples {sampled}",
                plan.synapses.len()
            ));
        }
        if !plan.synapses.is_sorted_by(|a, b| a < b) {
            return Some("its synapses are not sorted and distinct".into());
        }
        if intersection_len(plan.active.cells(), &plan.synapses) != plan.synapses.len() {
            return Some("a synapse lies on a bit outside the pattern".into());
        }
        // A neuron not created yet holds nothing the plan could collide with: no fault.
        let neuron = self.neuron(&plan.neuron)?;
        if neuron.patterns.contains_key(&plan.id) {
            return Some("the neuron already holds a pattern with this id".into());
        }
        if let Some(other) = neuron.id_of_content(packed) {
            return Some(format!(
                "the neuron already holds these active bits as pattern {other}"
            ));
        }
        match neuron
            .segments
            .binary_search_by_key(&plan.segment, |&(number, _)| number)
        {
            Ok(at) => {
                let held = &self.segment(neuron.segments[at].1).synapses;
                let added = plan
                    .synapses
                    .iter()
                    .filter(|cell| held.binary_search(cell).is_err())
                    .count();
                let union = held.len() + added;
                (union > self.max_synapses_per_segment as usize).then(|| {
                    format!(
                        "segment {} would hold {union} synapses, over the {} its false-match limit allows",
                        plan.segment, self.max_synapses_per_segment
                    )
                })
            }
            Err(_) if neuron.segments.len() >= params.max_segments_per_neuron as usize => {
                Some(format!(
                    "a new segment {} would give the neuron more than max_segments_per_neuron ({})",
                    plan.segment, params.max_segments_per_neuron
                ))
            }
            Err(_) => None,
        }
    }

    /// Creates a neuron if needed and restores its id and segment counters (start-up), so that
    /// ids and segment numbers of forgotten patterns are not handed out again.
    pub fn restore_neuron(&mut self, name: &Name, next_pattern_number: u64, next_segment: u32) {
        let slot = self.neuron_slot_or_create(name);
        let neuron = self.neurons.get_mut(slot);
        neuron.next_pattern_number = neuron.next_pattern_number.max(next_pattern_number);
        neuron.next_segment = neuron.next_segment.max(next_segment);
    }

    /// Takes the plan by value: its cells and id move into the tables instead of being copied
    /// (start-up applies a million plans).
    fn apply_store_quietly(&mut self, checked: CheckedPlan) -> NeuronSlot {
        let CheckedPlan { plan, packed } = checked;
        let neuron_slot = self.neuron_slot_or_create(&plan.neuron);
        let segment_slot = self.segment_slot_or_create(neuron_slot, plan.segment);
        let segment = self.segments.get_mut(segment_slot);
        self.fill
            .remove(segment.patterns.len(), segment.synapses.len());
        // One merge of two sorted lists: inserting cell by cell would shift the table once per
        // synapse, which dominated replaying millions of stores at start-up.
        let mut merged = Vec::with_capacity(segment.synapses.len() + plan.synapses.len());
        let mut existing = segment.synapses.iter().copied().peekable();
        for &cell in &plan.synapses {
            while let Some(&c) = existing.peek() {
                if c >= cell {
                    break;
                }
                merged.push(c);
                existing.next();
            }
            if existing.peek() == Some(&cell) {
                existing.next();
            } else if self.posting {
                self.index.add(cell, segment_slot);
            }
            merged.push(cell);
        }
        merged.extend(existing);
        merged.shrink_to_fit();
        segment.synapses = merged;
        // Exactly the room needed: segments stay small and a doubling would leave a third of
        // every list unused.
        segment.patterns.reserve_exact(1);
        segment
            .patterns
            .push((plan.id.clone(), plan.synapses.len() as u32));
        segment.pattern_synapses.reserve_exact(plan.synapses.len());
        segment.pattern_synapses.extend_from_slice(&plan.synapses);
        self.fill
            .add(segment.patterns.len(), segment.synapses.len());
        let synapse_count = segment.synapses.len() as u32;
        let false_match = self.false_match_for(synapse_count);
        self.segments.get_mut(segment_slot).false_match = false_match;
        let neuron = self.neurons.get_mut(neuron_slot);
        if let Ok(number) = plan.id.as_str().parse::<u64>() {
            neuron.next_pattern_number = neuron.next_pattern_number.max(number.saturating_add(1));
        }
        self.pattern_count += 1;
        self.pattern_bytes += own_bytes(plan.active.len(), &plan.synapses, plan.metadata.as_ref());
        neuron.insert_pattern(
            plan.id,
            StoredPattern {
                active: packed,
                segment: plan.segment,
                metadata: plan.metadata,
            },
        );
        neuron_slot
    }

    /// Checks that a pattern exists, so that forgetting it cannot fail once committed.
    pub fn check_forget(&self, neuron: &Name, id: &Name) -> Result<(), EngineError> {
        let found = self
            .neuron(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        if found.patterns.contains_key(id) {
            Ok(())
        } else {
            Err(EngineError::UnknownPattern {
                neuron: neuron.clone(),
                id: id.clone(),
            })
        }
    }

    /// Forgets a pattern: its synapses go unless another pattern of the segment still uses them,
    /// and a segment left without patterns disappears.
    pub fn apply_forget(&mut self, neuron: &Name, id: &Name) -> Result<(), EngineError> {
        self.check_forget(neuron, id)?;
        let neuron_slot = self.neuron_slots[neuron];
        let found = self.neurons.get_mut(neuron_slot);
        let pattern = found.remove_pattern(id).expect("checked above");
        let at = found
            .segments
            .binary_search_by_key(&pattern.segment, |&(n, _)| n)
            .expect("segment of a stored pattern");
        let segment_slot = found.segments[at].1;
        let segment = self.segments.get_mut(segment_slot);
        let (position, run) = segment
            .pattern_run(id)
            .expect("a stored pattern is listed by its segment");
        let synapses: Vec<CellIndex> = segment.pattern_synapses[run.clone()].to_vec();
        self.pattern_bytes -= own_bytes(pattern.active.len(), &synapses, pattern.metadata.as_ref());
        self.fill
            .remove(segment.patterns.len(), segment.synapses.len());
        let dropped: Vec<CellIndex> = synapses
            .iter()
            .copied()
            .filter(|&cell| !segment.sampled_by_another(cell, position))
            .collect();
        segment
            .synapses
            .retain(|cell| dropped.binary_search(cell).is_err());
        for &cell in &dropped {
            self.index.remove(cell, segment_slot);
        }
        segment.pattern_synapses.drain(run);
        segment.patterns.remove(position);
        self.fill
            .add(segment.patterns.len(), segment.synapses.len());
        if segment.patterns.is_empty() {
            debug_assert!(segment.synapses.is_empty());
            self.segments.remove(segment_slot);
            found.segments.remove(at);
        } else {
            let count = segment.synapses.len() as u32;
            let p = self.false_match_for(count);
            self.segments.get_mut(segment_slot).false_match = p;
        }
        self.pattern_count -= 1;
        self.refresh_neuron(neuron_slot);
        Ok(())
    }

    /// Removes a neuron with all its segments and patterns.
    pub fn delete_neuron(&mut self, neuron: &Name) -> Result<(), EngineError> {
        let slot = self
            .neuron_slots
            .remove(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        let removed = self.neurons.remove(slot);
        for (_, segment_slot) in removed.segments {
            let segment = self.segments.remove(segment_slot);
            self.fill
                .remove(segment.patterns.len(), segment.synapses.len());
            for cell in segment.synapses {
                self.index.remove(cell, segment_slot);
            }
            self.pattern_bytes -= (segment.pattern_synapses.len() * size_of::<CellIndex>()) as u64;
        }
        self.pattern_count -= removed.patterns.len() as u64;
        self.pattern_bytes -= removed
            .patterns
            .values()
            .map(|pattern| own_bytes(pattern.active.len(), &[], pattern.metadata.as_ref()))
            .sum::<u64>();
        self.forget_expected_false_matches();
        Ok(())
    }

    fn neuron_slot_or_create(&mut self, name: &Name) -> NeuronSlot {
        if let Some(&slot) = self.neuron_slots.get(name) {
            return slot;
        }
        let slot = self.neurons.insert(Neuron::new(name.clone()));
        self.neuron_slots.insert(name.clone(), slot);
        slot
    }

    fn segment_slot_or_create(&mut self, neuron_slot: NeuronSlot, number: u32) -> SegmentSlot {
        let neuron = self.neurons.get_mut(neuron_slot);
        match neuron.segments.binary_search_by_key(&number, |&(n, _)| n) {
            Ok(at) => neuron.segments[at].1,
            Err(at) => {
                let segment = Segment {
                    neuron: neuron_slot,
                    number,
                    synapses: Vec::new(),
                    patterns: Vec::new(),
                    pattern_synapses: Vec::new(),
                    false_match: Probability::ZERO,
                };
                let slot = self.segments.insert(segment);
                neuron.segments.insert(at, (number, slot));
                neuron.next_segment = neuron.next_segment.max(number + 1);
                slot
            }
        }
    }

    fn false_match_for(&mut self, synapses: u32) -> Probability {
        let params = &self.params;
        *self
            .false_match_by_synapses
            .entry(synapses)
            .or_insert_with(|| params.segment_false_match(synapses))
    }

    /// Recomputes a neuron's cached false-match probability after one of its segments changed.
    fn refresh_neuron(&mut self, slot: NeuronSlot) {
        let neuron = self.neurons.get(slot);
        let p = Probability::any_of(
            neuron
                .segments
                .iter()
                .map(|&(_, s)| self.segment(s).false_match),
        );
        self.neurons.get_mut(slot).false_match = p;
        self.forget_expected_false_matches();
    }

    /// Drops the cached expected false matches: the neurons changed.
    fn forget_expected_false_matches(&mut self) {
        self.expected_false_matches
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{EngineError, Name, Pattern, SpaceSpec, StorePlan, StoreRequest};

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    /// A standard space (2048 bits, 24 synapses, threshold 12, at most 8 segments a neuron) and
    /// the plan of one pattern.
    fn space_and_plan() -> (crate::engine::Space, StorePlan) {
        let space = crate::engine::space_for_tests(
            "s",
            SpaceSpec {
                input_size: 2048,
                active_bits: 40,
                synapses_per_pattern: Some(24),
                threshold: Some(12),
                max_segments_per_neuron: Some(8),
                ..SpaceSpec::default()
            },
        );
        let request = StoreRequest {
            neuron: name("n"),
            active: Pattern::from_sorted((0..40).map(|i| i * 50).collect(), 2048).unwrap(),
            id: None,
            metadata: None,
        };
        let plan = match space.plan_store(&[request]).unwrap().remove(0) {
            crate::engine::Planned::New(plan) => plan,
            crate::engine::Planned::Existing { .. } => unreachable!("an empty space"),
        };
        (space, plan)
    }

    #[test]
    fn a_space_loaded_in_chunks_answers_as_one_stored_pattern_by_pattern() {
        let spec = SpaceSpec {
            input_size: 2048,
            active_bits: 40,
            synapses_per_pattern: Some(24),
            threshold: Some(12),
            ..SpaceSpec::default()
        };
        let mut rng = crate::rng::Rng::new(3);
        let random_pattern = |rng: &mut crate::rng::Rng| {
            let mut cells = rng.distinct_below(2048, 40);
            cells.sort_unstable();
            Pattern::from_sorted(cells, 2048).unwrap()
        };
        let requests: Vec<StoreRequest> = (0..3000)
            .map(|i| StoreRequest {
                neuron: name(&format!("n{}", i % 40)),
                active: random_pattern(&mut rng),
                id: None,
                metadata: None,
            })
            .collect();
        let mut live = crate::engine::space_for_tests("s", spec.clone());
        let mut loaded = crate::engine::space_for_tests("s", spec);
        let plans: Vec<StorePlan> = live
            .plan_store(&requests)
            .unwrap()
            .into_iter()
            .map(|planned| match planned {
                crate::engine::Planned::New(plan) => plan,
                crate::engine::Planned::Existing { .. } => unreachable!("distinct patterns"),
            })
            .collect();
        live.apply_stores(plans.clone()).unwrap();
        for chunk in plans.chunks(700) {
            loaded.apply_stores_unrefreshed(chunk.to_vec()).unwrap();
        }
        loaded.finish_loading();
        assert!(live.is_dense() && loaded.is_dense());
        assert_eq!(live.synapse_count(), loaded.synapse_count());
        assert_eq!(live.report(), loaded.report());
        for i in 0..300 {
            // Stored patterns with a few bits moved (matches), and random ones.
            let active = if i % 2 == 0 {
                let mut cells = requests[i * 7].active.cells().to_vec();
                cells.truncate(34);
                cells.extend(rng.distinct_below(2048, 6));
                cells.sort_unstable();
                cells.dedup();
                Pattern::from_sorted(cells, 2048).unwrap()
            } else {
                random_pattern(&mut rng)
            };
            let query = crate::engine::Query {
                active,
                threshold: None,
                limit: 10,
            };
            assert_eq!(live.recognize(&query), loaded.recognize(&query));
        }
    }

    fn refusal(plan: StorePlan) -> String {
        let (mut space, _) = space_and_plan();
        match space.apply_store(plan) {
            Err(error @ EngineError::InvalidPlan { .. }) => {
                assert_eq!(space.counts().patterns, 0, "nothing applied");
                error.to_string()
            }
            other => panic!("applied or refused otherwise: {other:?}"),
        }
    }

    #[test]
    fn a_plan_that_breaks_a_rule_is_refused_before_it_reaches_the_index() {
        let (mut space, plan) = space_and_plan();
        let past_the_input = StorePlan {
            synapses: plan.synapses[..23].iter().copied().chain([5000]).collect(),
            ..plan.clone()
        };
        assert!(refusal(past_the_input).contains("outside the pattern"));
        let mut reversed = plan.synapses.clone();
        reversed.reverse();
        let unsorted = StorePlan {
            synapses: reversed,
            ..plan.clone()
        };
        assert!(refusal(unsorted).contains("not sorted"));
        let too_few = StorePlan {
            synapses: plan.synapses[..10].to_vec(),
            ..plan.clone()
        };
        assert!(refusal(too_few).contains("10 synapses where the space samples 24"));
        let repeated = StorePlan {
            synapses: vec![plan.synapses[0]; 24],
            ..plan.clone()
        };
        assert!(refusal(repeated).contains("not sorted and distinct"));

        space.apply_store(plan.clone()).unwrap();
        let same_id = StorePlan {
            active: Pattern::from_sorted((1..41).collect(), 2048).unwrap(),
            synapses: (1..25).collect(),
            ..plan.clone()
        };
        let refused = space.apply_store(same_id).unwrap_err().to_string();
        assert!(
            refused.contains("already holds a pattern with this id"),
            "{refused}"
        );
        let same_bits = StorePlan {
            id: name("other"),
            ..plan
        };
        let refused = space.apply_store(same_bits).unwrap_err().to_string();
        assert!(refused.contains("as pattern 1"), "{refused}");
        assert_eq!(space.counts().patterns, 1);
    }

    #[test]
    fn a_segment_is_refused_past_its_learning_limit_and_a_neuron_past_its_segments() {
        let (mut space, _) = space_and_plan();
        let limit = space.max_synapses_per_segment as usize;
        // Disjoint patterns forced into segment 0: each adds 24 synapses.
        let plan = |i: u32, segment: u32| StorePlan {
            neuron: name("n"),
            id: name(&format!("p{i}")),
            active: Pattern::from_sorted((i * 40..i * 40 + 40).collect(), 2048).unwrap(),
            synapses: (i * 40..i * 40 + 24).collect(),
            segment,
            metadata: None,
        };
        let fits = limit / 24;
        for i in 0..fits as u32 {
            space.apply_store(plan(i, 0)).unwrap();
        }
        let refused = space.apply_store(plan(fits as u32, 0)).unwrap_err();
        assert!(refused.to_string().contains("over the"), "{refused}");
        let max = space.params().max_segments_per_neuron;
        for segment in 1..max {
            space
                .apply_store(plan(fits as u32 + segment, segment))
                .unwrap();
        }
        let refused = space.apply_store(plan(fits as u32 + max, max)).unwrap_err();
        assert!(
            refused.to_string().contains("max_segments_per_neuron"),
            "{refused}"
        );
    }
}
