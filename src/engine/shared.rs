//! Spaces as the service shares them: each behind its own lock, all in one map by name.
//!
//! Queries share a space's lock and a write holds it alone, so a query sees a pattern wholly or
//! not at all; the map's own lock is held only to look a space up, never while a space is read.

use super::pattern::Name;
use super::space::Space;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A space shared between the queries that read it and the one writer that changes it.
pub type SharedSpace = Arc<SpaceLock>;

/// A space behind its lock, with its segment count readable without the lock: what a reader
/// needs to know, before it waits for the lock, whether its read will be cheap.
#[derive(Debug)]
pub struct SpaceLock {
    space: RwLock<Space>,
    segments: AtomicU64,
}

impl SpaceLock {
    pub fn new(space: Space) -> SpaceLock {
        SpaceLock {
            segments: AtomicU64::new(space.segment_count()),
            space: RwLock::new(space),
        }
    }

    /// The space's segments as of its last change.
    pub fn segment_count(&self) -> u64 {
        self.segments.load(Ordering::Relaxed)
    }

    /// Changes the space under its write lock, then publishes its new segment count.
    pub fn update<T>(&self, change: impl FnOnce(&mut Space) -> T) -> T {
        let mut space = self.space.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = change(&mut space);
        self.segments
            .store(space.segment_count(), Ordering::Relaxed);
        outcome
    }
}

/// Reading goes through the lock as usual; [`SpaceLock::update`] is the way to write.
impl Deref for SpaceLock {
    type Target = RwLock<Space>;

    fn deref(&self) -> &RwLock<Space> {
        &self.space
    }
}

/// Every space, by name.
///
/// Locks are taken through `PoisonError::into_inner`: a panic in another request must not take
/// the whole service down with it, and a write applies only plans that were already checked.
#[derive(Debug, Default)]
pub struct Spaces {
    spaces: RwLock<BTreeMap<Name, SharedSpace>>,
}

impl Spaces {
    pub fn get(&self, name: &Name) -> Option<SharedSpace> {
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn insert(&self, space: Space) -> SharedSpace {
        let name = space.name().clone();
        let shared = Arc::new(SpaceLock::new(space));
        self.spaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::clone(&shared));
        shared
    }

    pub fn remove(&self, name: &Name) -> Option<SharedSpace> {
        self.spaces
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
    }

    /// Takes every space of `fresh` in place of the ones held now, in one step: a reader sees
    /// the old spaces or the new, never a mix.
    pub fn replace_with(&self, fresh: Spaces) {
        let fresh = fresh
            .spaces
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        *self.spaces.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// Up to `limit` spaces by name, starting after `after` (from the first without it).
    pub fn page(&self, after: Option<&Name>, limit: usize) -> Vec<SharedSpace> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .range::<Name, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, space)| Arc::clone(space))
            .collect()
    }

    /// Every space, by name.
    pub fn all(&self) -> Vec<SharedSpace> {
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
