//! Numbers into buckets: the random distributed scalar code's arithmetic (as htm.core's RDSE).
//!
//! A value falls in bucket `floor(x / resolution)`; a field of `a_f` bits activates the keys
//! `bucket .. bucket + a_f`, so values `k` buckets apart share `a_f - k` keys and values a radius
//! (`a_f` buckets) apart share none. A cyclic quantity (an angle, an hour) splits its period into
//! whole buckets and wraps its keys, so 359 degrees sits next to 0. Bucketing floors: truncating
//! toward zero (as htm.core does) would put -0.5 and 0.5 in one bucket.

/// How a number field turns values into keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    resolution: f64,
    /// For cyclic fields: the period and how many buckets it holds.
    cycle: Option<(f64, i64)>,
}

impl Scalar {
    /// A scalar code of `active_bits` keys per value, with `resolution` (or `radius`, which is
    /// `active_bits` resolutions) and an optional `period`.
    pub fn new(
        active_bits: u32,
        resolution: Option<f64>,
        radius: Option<f64>,
        period: Option<f64>,
    ) -> Result<Scalar, String> {
        let resolution = match (resolution, radius) {
            (Some(_), Some(_)) => {
                return Err("give resolution or radius, not both".into());
            }
            (Some(resolution), None) => resolution,
            (None, Some(radius)) => radius / f64::from(active_bits),
            (None, None) => return Err("needs a resolution (or a radius)".into()),
        };
        if !(resolution.is_finite() && resolution > 0.0) {
            return Err(format!(
                "resolution must be a positive number, not {resolution}"
            ));
        }
        let cycle = match period {
            None => None,
            Some(period) => {
                if !(period.is_finite() && period > 0.0) {
                    return Err(format!("period must be a positive number, not {period}"));
                }
                let buckets = (period / resolution).round();
                if buckets < f64::from(active_bits) {
                    return Err(format!(
                        "period {period} holds {buckets} buckets of {resolution}: it must hold at least active_bits ({active_bits}), or values across the cycle would share bits"
                    ));
                }
                if buckets > (1u64 << 53) as f64 {
                    return Err(format!(
                        "period {period} holds more than 2^53 buckets of {resolution}"
                    ));
                }
                Some((period, buckets as i64))
            }
        };
        Ok(Scalar { resolution, cycle })
    }

    /// The width of one bucket, in the field's units (for a cycle, its period over its buckets).
    pub fn resolution(&self) -> f64 {
        match self.cycle {
            Some((period, buckets)) => period / buckets as f64,
            None => self.resolution,
        }
    }

    /// The resolution the client asked for (stored with the space).
    pub fn requested_resolution(&self) -> f64 {
        self.resolution
    }

    /// The first key of a value's run of `active_bits` keys, or why the value has none.
    pub fn bucket(&self, x: f64, active_bits: u32) -> Result<i64, String> {
        if !x.is_finite() {
            return Err(format!("{x} is not a finite number"));
        }
        match self.cycle {
            Some((period, buckets)) => {
                let turn = x.rem_euclid(period) / period;
                // rem_euclid may round up to the period itself: that is bucket 0 again.
                Ok(((turn * buckets as f64).floor() as i64).rem_euclid(buckets))
            }
            None => {
                let bucket = (x / self.resolution).floor();
                // 2^63 is exactly representable; every f64 below it converts without wrapping.
                let in_range = bucket >= -(2f64.powi(63)) && bucket < 2f64.powi(63);
                match in_range
                    .then_some(bucket as i64)
                    .and_then(|b| b.checked_add(i64::from(active_bits)))
                {
                    Some(_) => Ok(bucket as i64),
                    None => Err(format!(
                        "{x} falls in bucket {bucket:e} of resolution {}, beyond the 64-bit bucket range",
                        self.resolution
                    )),
                }
            }
        }
    }

    /// The keys a bucket activates: `bucket + o` for `o < active_bits`, wrapped on a cycle.
    pub fn keys(&self, bucket: i64, active_bits: u32) -> impl Iterator<Item = u64> + '_ {
        (0..i64::from(active_bits)).map(move |o| match self.cycle {
            Some((_, buckets)) => (bucket + o).rem_euclid(buckets) as u64,
            None => (bucket + o) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_so_negative_values_do_not_share_bucket_zero() {
        let scalar = Scalar::new(4, Some(1.0), None, None).unwrap();
        assert_eq!(scalar.bucket(0.5, 4), Ok(0));
        assert_eq!(scalar.bucket(-0.5, 4), Ok(-1));
        assert_eq!(scalar.bucket(-1.0, 4), Ok(-1));
        assert_eq!(scalar.keys(-1, 4).collect::<Vec<_>>(), [u64::MAX, 0, 1, 2]);
    }

    #[test]
    fn a_radius_is_active_bits_resolutions() {
        let scalar = Scalar::new(8, None, Some(2.0), None).unwrap();
        assert_eq!(scalar.resolution(), 0.25);
        assert!(Scalar::new(8, Some(1.0), Some(2.0), None).is_err());
        assert!(Scalar::new(8, None, None, None).is_err());
        assert!(Scalar::new(8, Some(0.0), None, None).is_err());
        assert!(Scalar::new(8, Some(f64::NAN), None, None).is_err());
    }

    #[test]
    fn values_beyond_the_bucket_range_are_refused() {
        let scalar = Scalar::new(4, Some(1.0), None, None).unwrap();
        assert!(scalar.bucket(f64::NAN, 4).is_err());
        assert!(scalar.bucket(f64::INFINITY, 4).is_err());
        assert!(scalar.bucket(1e19, 4).is_err());
        assert!(scalar.bucket(-1e19, 4).is_err());
        // The last bucket whose run of keys still fits.
        assert!(scalar.bucket(9.2e18, 4).is_ok());
        let tiny = Scalar::new(4, Some(1e-300), None, None).unwrap();
        assert!(tiny.bucket(1.0, 4).is_err());
    }

    #[test]
    fn a_cycle_wraps_its_keys() {
        let heading = Scalar::new(4, Some(5.0), None, Some(360.0)).unwrap();
        assert_eq!(heading.bucket(359.0, 4), Ok(71));
        assert_eq!(heading.bucket(-1.0, 4), Ok(71));
        assert_eq!(heading.bucket(720.0, 4), Ok(0));
        assert_eq!(heading.keys(71, 4).collect::<Vec<_>>(), [71, 0, 1, 2]);
        // A period must hold at least a run of buckets.
        assert!(Scalar::new(4, Some(120.0), None, Some(360.0)).is_err());
        // A period that is not a whole number of resolutions is split into whole buckets.
        let odd = Scalar::new(4, Some(7.0), None, Some(360.0)).unwrap();
        assert_eq!(odd.resolution(), 360.0 / 51.0);
    }
}
