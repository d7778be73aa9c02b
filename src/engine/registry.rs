//! Spaces as the service shares them: each behind its own lock, all in one map by name.
//!
//! Queries share a space's lock and a write holds it alone, so a query sees a pattern wholly or
//! not at all; the map's own lock is held only to look a space up, never while a space is read.
//!
//! A replica may serve only some of the database's spaces ([`SpaceSet`]), so that spaces too large
//! for one machine's memory together can be spread over groups of replicas: the others are never
//! held here, so every path that fills the map (start-up, a reload, the change log) leaves them out
//! by asking [`Spaces::serves`].

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

/// The spaces a replica serves: every one, or those named and those whose names start with a
/// prefix (written `prefix*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceSet {
    /// `None`: every space.
    only: Option<(Vec<Name>, Vec<String>)>,
    /// The setting as given, for messages.
    written: String,
}

/// Why a list of spaces was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpaceSetError {
    #[error(
        "the list of spaces is empty: name at least one space or prefix (or leave it unset to serve every space)"
    )]
    Empty,
    #[error("{item:?} is not a space name or a prefix ending in `*`: {reason}")]
    Item { item: String, reason: String },
}

impl SpaceSet {
    /// Every space.
    pub fn all() -> SpaceSet {
        SpaceSet::default()
    }

    /// A comma-separated list of names and prefixes ending in `*` (a lone `*`: every space).
    pub fn parse(list: &str) -> Result<SpaceSet, SpaceSetError> {
        let (mut names, mut prefixes) = (Vec::new(), Vec::new());
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let refused = |reason: String| SpaceSetError::Item {
                item: item.to_owned(),
                reason,
            };
            match item.strip_suffix('*') {
                Some("") => return Ok(SpaceSet::all()),
                // A prefix is checked as the start of a name: a name's characters, and room for
                // one more (so `.*`, the start of `.hidden`, is a prefix though `.` is no name).
                Some(prefix) => {
                    Name::parse(&format!("{prefix}x")).map_err(|e| refused(e.to_string()))?;
                    prefixes.push(prefix.to_owned());
                }
                None => names.push(Name::parse(item).map_err(|e| refused(e.to_string()))?),
            }
        }
        if names.is_empty() && prefixes.is_empty() {
            return Err(SpaceSetError::Empty);
        }
        Ok(SpaceSet {
            only: Some((names, prefixes)),
            written: list.trim().to_owned(),
        })
    }

    pub fn contains(&self, name: &Name) -> bool {
        self.only.as_ref().is_none_or(|(names, prefixes)| {
            names.contains(name)
                || prefixes
                    .iter()
                    .any(|prefix| name.as_str().starts_with(prefix.as_str()))
        })
    }

    /// Whether this is every space.
    pub fn is_all(&self) -> bool {
        self.only.is_none()
    }
}

impl std::fmt::Display for SpaceSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_all() {
            f.write_str("*")
        } else {
            f.write_str(&self.written)
        }
    }
}

/// Every space this replica serves, by name.
///
/// Locks are taken through `PoisonError::into_inner`: a panic in another request must not take
/// the whole service down with it, and a write applies only plans that were already checked.
#[derive(Debug, Default)]
pub struct Spaces {
    spaces: RwLock<BTreeMap<Name, SharedSpace>>,
    served: SpaceSet,
}

impl Spaces {
    /// An empty map that will hold only the spaces of `served`.
    pub fn serving(served: SpaceSet) -> Spaces {
        Spaces {
            spaces: RwLock::default(),
            served,
        }
    }

    /// An empty map serving the same spaces as this one: what a reload fills.
    pub fn empty_like(&self) -> Spaces {
        Spaces::serving(self.served.clone())
    }

    /// Whether this replica serves the space `name` (whether or not it exists).
    pub fn serves(&self, name: &Name) -> bool {
        self.served.contains(name)
    }

    /// The spaces served.
    pub fn served(&self) -> &SpaceSet {
        &self.served
    }

    pub fn get(&self, name: &Name) -> Option<SharedSpace> {
        self.spaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Holds `space` (a space this replica does not serve is dropped: callers check
    /// [`Spaces::serves`] first to skip the work of building it).
    pub fn insert(&self, space: Space) -> SharedSpace {
        let name = space.name().clone();
        let shared = Arc::new(SpaceLock::new(space));
        if !self.serves(&name) {
            return shared;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    #[test]
    fn a_space_set_holds_its_names_and_prefixes_only() {
        let set = SpaceSet::parse(" sensors-*, alerts ,").unwrap();
        assert!(set.contains(&name("sensors-1")) && set.contains(&name("sensors-")));
        assert!(set.contains(&name("alerts")));
        assert!(!set.contains(&name("alerts-2")) && !set.contains(&name("sensors")));
        assert_eq!(set.to_string(), "sensors-*, alerts ,");
        for every in ["*", "a,*"] {
            let all = SpaceSet::parse(every).unwrap();
            assert!(all.is_all() && all.contains(&name("anything")));
        }
        assert_eq!(SpaceSet::parse(" , "), Err(SpaceSetError::Empty));
        assert!(SpaceSet::parse(".*,-*").unwrap().contains(&name(".x")));
        for bad in ["a b", "a/*", "**", "..", "."] {
            assert!(
                matches!(SpaceSet::parse(bad), Err(SpaceSetError::Item { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_map_serving_some_spaces_never_holds_the_others() {
        let spaces = Spaces::serving(SpaceSet::parse("a*").unwrap());
        spaces.insert(crate::engine::tiny_space("b"));
        spaces.insert(crate::engine::tiny_space("ab"));
        assert!(spaces.get(&name("b")).is_none());
        assert!(spaces.get(&name("ab")).is_some());
        assert!(spaces.empty_like().serves(&name("a1")));
        assert!(!spaces.empty_like().serves(&name("b")));
    }
}
