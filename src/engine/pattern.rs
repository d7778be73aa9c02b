//! Validated input: names and patterns.
//!
//! Parse, don't validate: a [`Name`] or a [`Pattern`] that exists is valid, so nothing past the
//! edge of the engine checks again. Each error names the problem and the offending value.

use std::fmt;
use std::sync::Arc;

/// An input bit: an index below the space's input size.
pub type CellIndex = u32;

/// The name of a space, a neuron or a pattern id: 1 to 128 letters, digits and `_.:-`, not dots
/// alone (`.` and `..` are path segments every HTTP client resolves away, so such a name could
/// be created but never reached again).
///
/// Shared rather than owned: a pattern's id is held by its neuron's map, its segment's list and
/// its content index, and a clone is a reference count, not another allocation (a million
/// patterns kept three strings each before).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 128;

impl Name {
    pub fn parse(raw: &str) -> Result<Name, NameError> {
        if raw.is_empty() || raw.len() > MAX_NAME_LEN {
            return Err(NameError::Length(raw.chars().count()));
        }
        if let Some(c) = raw
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "_.:-".contains(c)))
        {
            return Err(NameError::Character(c));
        }
        if raw.bytes().all(|b| b == b'.') {
            return Err(NameError::OnlyDots);
        }
        Ok(Name(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name has 1 to {MAX_NAME_LEN} characters, not {0}")]
    Length(usize),
    #[error("a name may hold only letters, digits and _.:- (found {0:?})")]
    Character(char),
    #[error("a name of dots alone is a path segment, not a name: add a letter or digit")]
    OnlyDots,
}

/// A set of active input bits, sorted and distinct, each below the space's input size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern(Arc<[CellIndex]>);

/// Why a list of indices is not a pattern. `position` is where the offending value stands in the
/// list as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a pattern needs at least one active bit")]
    Empty,
    #[error("active[{position}] = {value} is outside the input space 0..{input_size}")]
    OutOfRange {
        position: usize,
        value: i64,
        input_size: u32,
    },
    #[error("active[{position}] = {value} appears twice")]
    Duplicate { position: usize, value: i64 },
    #[error("a pattern has at most {MAX_ACTIVE_BITS} active bits, not {0}")]
    TooLong(usize),
}

/// The most active bits a pattern (stored or queried) may have: the bound that keeps every
/// probability of an answer cheap to compute.
pub const MAX_ACTIVE_BITS: usize = crate::theory::limits::MAX_ACTIVE_BITS as usize;

impl Pattern {
    /// Parses active indices in any order; negative and too-large values are out of range.
    pub fn parse(active: &[i64], input_size: u32) -> Result<Pattern, PatternError> {
        if active.is_empty() {
            return Err(PatternError::Empty);
        }
        if active.len() > MAX_ACTIVE_BITS {
            return Err(PatternError::TooLong(active.len()));
        }
        let mut cells = Vec::with_capacity(active.len());
        for (position, &value) in active.iter().enumerate() {
            if value < 0 || value >= i64::from(input_size) {
                return Err(PatternError::OutOfRange {
                    position,
                    value,
                    input_size,
                });
            }
            cells.push(value as CellIndex);
        }
        cells.sort_unstable();
        if let Some(pair) = cells.windows(2).find(|w| w[0] == w[1]) {
            let value = i64::from(pair[0]);
            // Report the second occurrence in the caller's order: that is the duplicate.
            let position = active
                .iter()
                .enumerate()
                .filter(|&(_, &v)| v == value)
                .nth(1)
                .map_or(0, |(i, _)| i);
            return Err(PatternError::Duplicate { position, value });
        }
        Ok(Pattern(cells.into()))
    }

    /// A pattern from cells that should already be sorted and distinct (rows this service
    /// wrote): checked in one pass instead of sorted, so start-up replays millions quickly.
    pub fn from_sorted(cells: Vec<CellIndex>, input_size: u32) -> Result<Pattern, PatternError> {
        if cells.is_empty() {
            return Err(PatternError::Empty);
        }
        if cells.windows(2).any(|pair| pair[0] >= pair[1]) {
            // Out of order or repeated: parse it the general way, which names the problem.
            let values: Vec<i64> = cells.iter().map(|&c| i64::from(c)).collect();
            return Pattern::parse(&values, input_size);
        }
        let last = *cells.last().expect("not empty");
        if last >= input_size {
            return Err(PatternError::OutOfRange {
                position: cells.len() - 1,
                value: i64::from(last),
                input_size,
            });
        }
        Ok(Pattern(cells.into()))
    }

    pub fn cells(&self) -> &[CellIndex] {
        &self.0
    }

    /// Checks that every cell lies below `input_size`. A pattern parsed against one space may be
    /// stored into another (a space deleted and re-created smaller while the request waited), so
    /// the writer checks again against the space it commits into.
    pub fn check_fits(&self, input_size: u32) -> Result<(), PatternError> {
        match self.0.last() {
            Some(&last) if last >= input_size => Err(PatternError::OutOfRange {
                position: self.0.len() - 1,
                value: i64::from(last),
                input_size,
            }),
            _ => Ok(()),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A name is its text in JSON.
impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A name is read back only if it keeps the naming rule (a change log entry, an export line).
impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        use serde::de::Error;
        let raw = String::deserialize(deserializer)?;
        Name::parse(&raw).map_err(|error| D::Error::custom(format!("the name {raw:?}: {error}")))
    }
}

/// A pattern is its sorted list of active cells in JSON.
impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(self.cells(), serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_of_allowed_characters_is_accepted() {
        for ok in ["a", "n000017", "sensor.left:3_b-2", &"x".repeat(128)] {
            assert_eq!(Name::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn an_empty_long_or_odd_name_is_rejected() {
        assert_eq!(Name::parse(""), Err(NameError::Length(0)));
        assert_eq!(Name::parse(&"x".repeat(129)), Err(NameError::Length(129)));
        assert_eq!(Name::parse("a b"), Err(NameError::Character(' ')));
        assert_eq!(Name::parse("a/b"), Err(NameError::Character('/')));
        assert_eq!(Name::parse("é"), Err(NameError::Character('é')));
        for dots in [".", "..", "..."] {
            assert_eq!(Name::parse(dots), Err(NameError::OnlyDots), "{dots}");
        }
        assert!(Name::parse(".a").is_ok() && Name::parse("v1.2").is_ok());
    }

    #[test]
    fn a_pattern_is_sorted_whatever_the_order_given() {
        let p = Pattern::parse(&[5, 1, 3], 8).unwrap();
        assert_eq!(p.cells(), &[1, 3, 5]);
        assert_eq!(p, Pattern::parse(&[3, 5, 1], 8).unwrap());
    }

    #[test]
    fn sorted_cells_are_checked_without_sorting_and_agree_with_parse() {
        assert_eq!(
            Pattern::from_sorted(vec![1, 3, 5], 8),
            Pattern::parse(&[5, 1, 3], 8)
        );
        assert_eq!(
            Pattern::from_sorted(vec![3, 1], 8),
            Pattern::parse(&[3, 1], 8)
        );
        assert_eq!(
            Pattern::from_sorted(vec![1, 1], 8),
            Pattern::parse(&[1, 1], 8)
        );
        assert_eq!(
            Pattern::from_sorted(vec![1, 8], 8),
            Pattern::parse(&[1, 8], 8)
        );
        assert_eq!(Pattern::from_sorted(vec![], 8), Err(PatternError::Empty));
    }

    #[test]
    fn bad_patterns_name_the_problem_and_the_value() {
        assert_eq!(Pattern::parse(&[], 8), Err(PatternError::Empty));
        assert_eq!(
            Pattern::parse(&[1, 8], 8),
            Err(PatternError::OutOfRange {
                position: 1,
                value: 8,
                input_size: 8
            })
        );
        assert_eq!(
            Pattern::parse(&[-1], 8),
            Err(PatternError::OutOfRange {
                position: 0,
                value: -1,
                input_size: 8
            })
        );
        assert_eq!(
            Pattern::parse(&[4, 2, 4], 8),
            Err(PatternError::Duplicate {
                position: 2,
                value: 4
            })
        );
        let message = Pattern::parse(&[4, 2, 4], 8).unwrap_err().to_string();
        assert!(message.contains("active[2] = 4"), "{message}");
        let long: Vec<i64> = (0..=MAX_ACTIVE_BITS as i64).collect();
        assert_eq!(
            Pattern::parse(&long, 1 << 20),
            Err(PatternError::TooLong(MAX_ACTIVE_BITS + 1))
        );
    }

    #[test]
    fn a_pattern_fits_a_smaller_space_only_when_its_last_cell_does() {
        let p = Pattern::parse(&[3, 900], 1000).unwrap();
        assert_eq!(p.check_fits(1000), Ok(()));
        assert_eq!(p.check_fits(901), Ok(()));
        assert_eq!(
            p.check_fits(900),
            Err(PatternError::OutOfRange {
                position: 1,
                value: 900,
                input_size: 900
            })
        );
        let message = p.check_fits(900).unwrap_err().to_string();
        assert!(message.contains("active[1] = 900"), "{message}");
    }
}
