//! Applying plans, forgetting and deleting: the only code that changes a space's tables.
//!
//! Nothing here decides anything a store's plan did not already decide, and every check that
//! could refuse a forget or a deletion runs before the first change, so a committed write always
//! applies.

use super::{Neuron, NeuronSlot, Segment, Space, StorePlan, StoredPattern};
use crate::engine::EngineError;
use crate::engine::index::SegmentSlot;
use crate::engine::pattern::Name;
use crate::theory::Probability;
use std::collections::HashMap;
use std::sync::PoisonError;

impl Space {
    /// Makes a planned store visible. Plans must be applied in the order they were made.
    pub fn apply_store(&mut self, plan: StorePlan) {
        let slot = self.apply_store_quietly(plan);
        self.refresh_neuron(slot);
    }

    /// Applies plans in order, refreshing each touched neuron's probability once at the end
    /// (start-up replays millions of plans; a neuron's refresh costs one step per segment).
    pub fn apply_stores(&mut self, plans: Vec<StorePlan>) {
        let mut touched: Vec<NeuronSlot> = plans
            .into_iter()
            .map(|p| self.apply_store_quietly(p))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            self.refresh_neuron(slot);
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
    fn apply_store_quietly(&mut self, plan: StorePlan) -> NeuronSlot {
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
            while let Some(&(c, uses)) = existing.peek() {
                if c >= cell {
                    break;
                }
                merged.push((c, uses));
                existing.next();
            }
            match existing.peek() {
                Some(&(c, uses)) if c == cell => {
                    merged.push((c, uses + 1));
                    existing.next();
                }
                _ => {
                    merged.push((cell, 1));
                    self.index.add(cell, segment_slot);
                }
            }
        }
        merged.extend(existing);
        segment.synapses = merged;
        segment.patterns.push(plan.id.clone());
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
        self.pattern_cells += (plan.active.len() + plan.synapses.len()) as u64;
        neuron
            .by_content
            .insert(plan.active.clone(), plan.id.clone());
        neuron.patterns.insert(
            plan.id,
            StoredPattern {
                active: plan.active,
                synapses: plan.synapses.into_boxed_slice(),
                segment: plan.segment,
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
        let pattern = found.patterns.remove(id).expect("checked above");
        found.by_content.remove(&pattern.active);
        self.pattern_cells -= (pattern.active.len() + pattern.synapses.len()) as u64;
        let at = found
            .segments
            .binary_search_by_key(&pattern.segment, |&(n, _)| n)
            .expect("segment of a stored pattern");
        let segment_slot = found.segments[at].1;
        let segment = self.segments.get_mut(segment_slot);
        self.fill
            .remove(segment.patterns.len(), segment.synapses.len());
        for cell in pattern.synapses.iter() {
            let i = segment
                .synapses
                .binary_search_by_key(cell, |&(c, _)| c)
                .expect("synapse of a stored pattern");
            segment.synapses[i].1 -= 1;
            if segment.synapses[i].1 == 0 {
                segment.synapses.remove(i);
                self.index.remove(*cell, segment_slot);
            }
        }
        segment.patterns.retain(|stored| stored != id);
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
            for (cell, _) in segment.synapses {
                self.index.remove(cell, segment_slot);
            }
        }
        self.pattern_count -= removed.patterns.len() as u64;
        self.pattern_cells -= removed
            .patterns
            .values()
            .map(|p| (p.active.len() + p.synapses.len()) as u64)
            .sum::<u64>();
        self.forget_expected_false_matches();
        Ok(())
    }

    fn neuron_slot_or_create(&mut self, name: &Name) -> NeuronSlot {
        if let Some(&slot) = self.neuron_slots.get(name) {
            return slot;
        }
        let neuron = Neuron {
            name: name.clone(),
            segments: Vec::new(),
            next_segment: 0,
            patterns: HashMap::new(),
            by_content: HashMap::new(),
            next_pattern_number: 1,
            false_match: Probability::ZERO,
        };
        let slot = self.neurons.insert(neuron);
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
