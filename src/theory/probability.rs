//! A probability that survives underflow.
//!
//! The theory's probabilities span thousands of orders of magnitude (a false match can be 1e-3885),
//! far below the smallest f64. [`Probability`] therefore keeps the natural logarithm as its source of
//! truth and derives the f64 value from it: the value may underflow to 0 while the logarithm stays
//! finite. Only an exact zero (an event that cannot happen) has a logarithm of minus infinity.

use std::cmp::Ordering;
use std::f64::consts::LN_10;

/// A probability in [0, 1], held as its natural logarithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probability {
    /// ln of the probability: 0 for certainty, -inf only for an exact zero.
    ln: f64,
}

impl Probability {
    /// The impossible event.
    pub const ZERO: Probability = Probability {
        ln: f64::NEG_INFINITY,
    };
    /// The certain event.
    pub const ONE: Probability = Probability { ln: 0.0 };

    /// The probability whose natural logarithm is `ln`.
    ///
    /// Values a few ulps above 0 (rounding in a sum that is 1 in exact arithmetic) are clamped to
    /// certainty.
    ///
    /// # Panics
    /// In debug builds, when `ln` is NaN or clearly positive: that is a bug in the caller.
    pub fn from_ln(ln: f64) -> Probability {
        debug_assert!(
            !ln.is_nan() && ln <= 1e-9,
            "not the logarithm of a probability: {ln}"
        );
        Probability { ln: ln.min(0.0) }
    }

    /// The probability with this f64 value (0 ..= 1).
    pub fn from_value(value: f64) -> Probability {
        Probability::from_ln(value.ln())
    }

    /// The value as an f64; 0 once it underflows (below about 4.9e-324).
    pub fn value(self) -> f64 {
        self.as_number().value()
    }

    /// The natural logarithm; -inf only for an exact zero.
    pub fn ln(self) -> f64 {
        self.ln
    }

    /// The base-10 logarithm, finite however small the probability, `None` only for an exact zero.
    pub fn log10(self) -> Option<f64> {
        self.as_number().log10()
    }

    /// The same number, without the promise of being at most 1.
    pub fn as_number(self) -> LogNumber {
        LogNumber::from_ln(self.ln)
    }

    /// Whether this is exactly the impossible event.
    pub fn is_zero(self) -> bool {
        self.ln == f64::NEG_INFINITY
    }

    /// The probability that at least one of several independent events happens: 1 - prod(1 - p_i).
    ///
    /// NP Eq. 8 for segments with different probabilities. When every p_i is tiny the answer is
    /// their sum (the product terms are below f64 precision), taken in log space so that nothing
    /// vanishes; otherwise `-expm1(sum ln1p(-p_i))` keeps full relative precision.
    pub fn any_of(events: impl IntoIterator<Item = Probability>) -> Probability {
        let mut log_sum = LogSum::default();
        let mut ln_none = 0.0;
        for p in events {
            log_sum.add(p.ln);
            ln_none += (-p.value()).ln_1p();
        }
        if log_sum.max < TINY_LN {
            Probability::from_ln(log_sum.ln())
        } else {
            Probability::from_value(-ln_none.exp_m1())
        }
    }

    /// The probability that at least one of `k` independent events of probability `self` happens:
    /// 1 - (1 - p)^k (NP Eq. 8 with equal segments).
    pub fn any_of_k(self, k: u64) -> Probability {
        if k == 0 {
            return Probability::ZERO;
        }
        if self.ln < TINY_LN {
            // k * p, exact to far below f64 precision since k * p is tiny too.
            Probability::from_ln((k as f64).ln() + self.ln)
        } else {
            Probability::from_value(-((k as f64) * (-self.value()).ln_1p()).exp_m1())
        }
    }
}

/// Below e^-230 (about 1e-100), 1 - prod(1 - p_i) equals sum p_i to far better than f64 precision
/// for any realistic number of events.
const TINY_LN: f64 = -230.0;

impl PartialOrd for Probability {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.ln.partial_cmp(&other.ln)
    }
}

/// A running log-sum-exp: ln(sum exp(x_i)) without overflow or underflow, for sums of tiny
/// probabilities and expected counts.
#[derive(Clone, Copy, Debug)]
pub struct LogSum {
    max: f64,
    scaled: f64,
}

impl Default for LogSum {
    fn default() -> Self {
        LogSum {
            max: f64::NEG_INFINITY,
            scaled: 0.0,
        }
    }
}

impl LogSum {
    pub fn add(&mut self, x: f64) {
        if x == f64::NEG_INFINITY {
            return;
        }
        if x > self.max {
            self.scaled = self.scaled * (self.max - x).exp() + 1.0;
            self.max = x;
        } else {
            self.scaled += (x - self.max).exp();
        }
    }

    pub fn ln(&self) -> f64 {
        if self.max == f64::NEG_INFINITY {
            f64::NEG_INFINITY
        } else {
            self.max + self.scaled.ln()
        }
    }
}

/// A non-negative number held as its natural logarithm (expected counts can be 1e-3000 too).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNumber {
    ln: f64,
}

impl LogNumber {
    pub fn from_ln(ln: f64) -> LogNumber {
        LogNumber { ln }
    }

    pub fn value(self) -> f64 {
        self.ln.exp()
    }

    pub fn ln(self) -> f64 {
        self.ln
    }

    /// None only for an exact zero.
    pub fn log10(self) -> Option<f64> {
        (self.ln > f64::NEG_INFINITY).then(|| self.ln / LN_10)
    }
}

/// A probability in JSON is `{"value": f64, "log10": f64 | null}`: the value may underflow to 0
/// while log10 stays exact, and log10 is null only for an exact zero.
impl serde::Serialize for Probability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_number().serialize(serializer)
    }
}

/// The same shape as a probability's, for a non-negative quantity such as an expected count.
impl serde::Serialize for LogNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut fields = serializer.serialize_struct("Probability", 2)?;
        fields.serialize_field("value", &self.value())?;
        fields.serialize_field("log10", &self.log10())?;
        fields.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probability_keeps_its_log_after_the_value_underflows() {
        let p = Probability::from_ln(-5000.0);
        assert_eq!(p.value(), 0.0);
        assert!((p.log10().unwrap() + 5000.0 / LN_10).abs() < 1e-9);
        assert!(!p.is_zero());
    }

    #[test]
    fn only_an_exact_zero_has_no_log10() {
        assert_eq!(Probability::ZERO.log10(), None);
        assert_eq!(Probability::ZERO.value(), 0.0);
        assert_eq!(Probability::ONE.log10(), Some(0.0));
    }

    #[test]
    fn any_of_tiny_events_is_their_sum_in_log_space() {
        let p = Probability::from_ln(-2000.0);
        let q = Probability::from_ln(-2000.0 + 2f64.ln());
        let both = Probability::any_of([p, q]);
        assert!((both.ln() - (-2000.0 + 3f64.ln())).abs() < 1e-12);
        assert!((p.any_of_k(3).ln() - both.ln()).abs() < 1e-12);
    }

    #[test]
    fn any_of_large_events_is_one_minus_the_product() {
        let p = Probability::from_value(0.5);
        let q = Probability::from_value(0.25);
        let both = Probability::any_of([p, q]);
        assert!((both.value() - (1.0 - 0.5 * 0.75)).abs() < 1e-15);
        assert!((p.any_of_k(3).value() - 0.875).abs() < 1e-15);
        assert_eq!(Probability::any_of([]), Probability::ZERO);
        assert_eq!(p.any_of_k(0), Probability::ZERO);
    }

    #[test]
    fn log_sum_matches_the_direct_sum() {
        let mut s = LogSum::default();
        for x in [1.0f64, 2.0, 3.0] {
            s.add(x.ln());
        }
        assert!((s.ln() - 6f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn a_probability_serialises_as_value_and_log10() {
        let tiny = Probability::from_ln(-1000.0 * LN_10);
        let json = serde_json::to_value(tiny).unwrap();
        assert_eq!(json["value"], 0.0);
        assert!((json["log10"].as_f64().unwrap() + 1000.0).abs() < 1e-9);
        let zero = serde_json::to_value(Probability::ZERO).unwrap();
        assert_eq!(zero, serde_json::json!({"value": 0.0, "log10": null}));
    }
}
