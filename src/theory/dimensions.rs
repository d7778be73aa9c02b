//! The four numbers every quantity of the theory starts from (n, a, s, θ), checked against each
//! other in one place. A space's parameters and a what-if analysis name them differently
//! (`input_size` in a body, `n` on the command line), so the check takes the caller's
//! spelling: one rule, one message, whichever door the numbers came in by.

use super::InvalidParameter;
use super::limits::{MAX_INPUT_SIZE, MAX_SYNAPSES_PER_PATTERN};

/// n input bits, a of them active, s synapses sampled per pattern, threshold θ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dimensions {
    pub n: u64,
    pub a: u64,
    pub s: u64,
    pub theta: u64,
}

/// How a caller spells each dimension in its errors.
#[derive(Clone, Copy, Debug)]
pub struct Spelling {
    pub n: &'static str,
    pub a: &'static str,
    pub s: &'static str,
    pub theta: &'static str,
}

impl Spelling {
    /// The paper's letters, as `dendrite theory` and `GET /v1/theory` take them.
    pub const LETTERS: Spelling = Spelling {
        n: "n",
        a: "a",
        s: "s",
        theta: "theta",
    };
    /// A space's JSON keys.
    pub const SPACE: Spelling = Spelling {
        n: "input_size",
        a: "active_bits",
        s: "synapses_per_pattern",
        theta: "threshold",
    };
}

impl Dimensions {
    /// Checks each dimension against its limit and the ones before it; the first problem found
    /// is named as `spelling` spells it. How many bits a stored pattern may hold is the engine's
    /// rule, not the theory's: an analysis of a = 20,000 is fine where the cost allows.
    pub fn check(&self, spelling: &Spelling) -> Result<(), InvalidParameter> {
        let Dimensions { n, a, s, theta } = *self;
        let within = |field, value: u64, most: u64, because: Option<&str>| {
            if (1..=most).contains(&value) {
                return Ok(());
            }
            let limit = because.map_or_else(|| most.to_string(), |why| format!("{most} ({why})"));
            Err(InvalidParameter::new(
                field,
                format!("must be in 1..={limit}, not {value}"),
            ))
        };
        within(spelling.n, n, MAX_INPUT_SIZE, None)?;
        within(spelling.a, a, n, Some(spelling.n))?;
        within(spelling.s, s, n, Some(spelling.n))?;
        within(spelling.s, s, MAX_SYNAPSES_PER_PATTERN, None)?;
        // A segment holding one pattern has min(s, a) synapses: a higher threshold could never
        // be reached by a stored pattern, so every answer would be "no match".
        let (most, limit) = if s <= a {
            (s, spelling.s)
        } else {
            (a, spelling.a)
        };
        within(spelling.theta, theta, most, Some(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n: u64, a: u64, s: u64, theta: u64) -> Result<(), String> {
        Dimensions { n, a, s, theta }
            .check(&Spelling::SPACE)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_dimension_is_held_to_its_limit_and_the_ones_before_it() {
        assert_eq!(check(2048, 40, 24, 12), Ok(()));
        assert_eq!(check(1, 1, 1, 1), Ok(()));
        let cases = [
            ((0, 1, 1, 1), "input_size: must be in 1..=16777216, not 0"),
            (
                (1 << 25, 1, 1, 1),
                "input_size: must be in 1..=16777216, not 33554432",
            ),
            (
                (64, 0, 1, 1),
                "active_bits: must be in 1..=64 (input_size), not 0",
            ),
            (
                (64, 65, 1, 1),
                "active_bits: must be in 1..=64 (input_size), not 65",
            ),
            (
                (64, 8, 65, 1),
                "synapses_per_pattern: must be in 1..=64 (input_size), not 65",
            ),
            (
                (4096, 40, 2000, 1),
                "synapses_per_pattern: must be in 1..=1024, not 2000",
            ),
            (
                (64, 8, 4, 5),
                "threshold: must be in 1..=4 (synapses_per_pattern), not 5",
            ),
            (
                (64, 8, 16, 9),
                "threshold: must be in 1..=8 (active_bits), not 9",
            ),
            (
                (64, 8, 4, 0),
                "threshold: must be in 1..=4 (synapses_per_pattern), not 0",
            ),
        ];
        for ((n, a, s, theta), expected) in cases {
            assert_eq!(
                check(n, a, s, theta),
                Err(expected.to_owned()),
                "{n} {a} {s} {theta}"
            );
        }
    }

    #[test]
    fn errors_name_the_dimension_as_the_caller_spells_it() {
        let error = Dimensions {
            n: 64,
            a: 65,
            s: 1,
            theta: 1,
        }
        .check(&Spelling::LETTERS)
        .unwrap_err();
        assert_eq!(error.to_string(), "a: must be in 1..=64 (n), not 65");
    }
}
