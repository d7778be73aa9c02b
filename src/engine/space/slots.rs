//! A table of numbered slots whose freed numbers are handed out again.
//!
//! Neurons and segments live in such tables: the inverted index and the recognition counters are
//! indexed by a segment's slot, so slots must stay small and dense however many segments come
//! and go, and a slot's number must not move while its item lives.

/// A slot's number in its table.
pub type Slot = u32;

/// Items by slot; a freed slot is reused by the next insertion.
#[derive(Clone, Debug)]
pub(super) struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<Slot>,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Stores an item in a freed slot if there is one, else in a new slot at the end.
    pub(super) fn insert(&mut self, item: T) -> Slot {
        match self.free.pop() {
            Some(slot) => {
                self.items[slot as usize] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as Slot
            }
        }
    }

    /// Takes the item out of its slot and frees the slot.
    ///
    /// # Panics
    /// When the slot holds nothing: callers only hold slots of live items.
    pub(super) fn remove(&mut self, slot: Slot) -> T {
        let item = self.items[slot as usize].take().expect("a live slot");
        self.free.push(slot);
        item
    }

    /// The item in a live slot.
    ///
    /// # Panics
    /// When the slot holds nothing.
    pub(super) fn get(&self, slot: Slot) -> &T {
        self.items[slot as usize].as_ref().expect("a live slot")
    }

    /// The item in a live slot, to change.
    ///
    /// # Panics
    /// When the slot holds nothing.
    pub(super) fn get_mut(&mut self, slot: Slot) -> &mut T {
        self.items[slot as usize].as_mut().expect("a live slot")
    }

    /// Every live item with its slot, by slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Slot, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(slot, item)| Some((slot as Slot, item.as_ref()?)))
    }

    /// Every slot in order, live or free: what a table indexed by slot must cover.
    pub(super) fn by_slot(&self) -> impl Iterator<Item = Option<&T>> {
        self.items.iter().map(Option::as_ref)
    }

    /// Slots in use or free: one past the highest slot ever handed out.
    pub(super) fn slot_count(&self) -> usize {
        self.items.len()
    }

    /// Freed slots waiting to be reused.
    pub(super) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Slots the table has room for without growing (what its memory is).
    pub(super) fn capacity(&self) -> usize {
        self.items.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_before_the_table_grows() {
        let mut slots = Slots::default();
        let (a, b, c) = (slots.insert('a'), slots.insert('b'), slots.insert('c'));
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slots.remove(b), 'b');
        assert_eq!(slots.free_count(), 1);
        assert_eq!(slots.insert('d'), b, "the freed slot first");
        assert_eq!(slots.insert('e'), 3, "then a new one at the end");
        assert_eq!(slots.slot_count(), 4);
        let live: Vec<_> = slots.iter().collect();
        assert_eq!(live, [(0, &'a'), (1, &'d'), (2, &'c'), (3, &'e')]);
    }

    #[test]
    fn a_removed_item_leaves_a_hole_until_reused() {
        let mut slots = Slots::default();
        slots.insert(1);
        slots.insert(2);
        slots.remove(0);
        let by_slot: Vec<_> = slots.by_slot().collect();
        assert_eq!(by_slot, [None, Some(&2)]);
        assert_eq!(slots.iter().count(), 1);
    }

    #[test]
    #[should_panic(expected = "a live slot")]
    fn reading_a_freed_slot_is_a_bug() {
        let mut slots = Slots::default();
        let slot = slots.insert(());
        slots.remove(slot);
        slots.get(slot);
    }
}
