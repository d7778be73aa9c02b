//! Timestamps into calendar components, in a time zone the client names.
//!
//! A timestamp's meaning to a user is local: 08:00 is morning in Berlin, whatever the server's
//! zone. So every time field names an IANA zone (never the server's own), read from the time-zone
//! database built into the binary, so every machine and replica agrees on every offset. A
//! timestamp with an offset is an instant, seen in the field's zone; one without is a wall-clock
//! time in that zone (in a DST gap it moves forward, in a fold it takes the earlier instant, as
//! RFC 9557's "compatible" rule says).
//!
//! The components are cyclic numbers, so nothing jumps: hour of week runs over 168 hours, so
//! Sunday 23:30 sits next to Monday 00:30 (a day-of-week code puts midnight between them).

use jiff::ZonedDateTime as Zoned;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// A calendar component a time field may encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Minutes since local midnight, cyclic over 1,440.
    TimeOfDay,
    /// Hours since Monday 00:00 local, cyclic over 168.
    HourOfWeek,
    /// Saturday or Sunday, local: a category of two values.
    Weekend,
    /// Days since 1 January 00:00 local, cyclic over 366.
    DayOfYear,
}

impl Part {
    pub const ALL: [Part; 4] = [
        Part::TimeOfDay,
        Part::HourOfWeek,
        Part::Weekend,
        Part::DayOfYear,
    ];

    /// The name the spec uses, and the suffix of the component's own hash key.
    pub fn name(self) -> &'static str {
        match self {
            Part::TimeOfDay => "time_of_day",
            Part::HourOfWeek => "hour_of_week",
            Part::Weekend => "weekend",
            Part::DayOfYear => "day_of_year",
        }
    }

    /// The cycle, in the component's unit; `None` for the weekend flag.
    pub fn period(self) -> Option<f64> {
        match self {
            Part::TimeOfDay => Some(1440.0),
            Part::HourOfWeek => Some(168.0),
            Part::Weekend => None,
            Part::DayOfYear => Some(366.0),
        }
    }

    /// The unit of the component's resolution and radius.
    pub fn unit(self) -> &'static str {
        match self {
            Part::TimeOfDay => "minutes",
            Part::HourOfWeek => "hours",
            Part::Weekend => "",
            Part::DayOfYear => "days",
        }
    }

    /// The radius used when the spec gives neither a resolution nor a radius: a morning, half a
    /// day of the week, a month of the year.
    pub fn default_radius(self) -> f64 {
        match self {
            Part::TimeOfDay => 240.0,
            Part::HourOfWeek => 12.0,
            Part::Weekend => 0.0,
            Part::DayOfYear => 30.0,
        }
    }
}

/// A time zone by its IANA name, from the database built into the binary.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("{name:?} is not an IANA time zone name"))
}

/// A timestamp (RFC 3339; the offset may be left out) seen in `zone`.
pub fn local(text: &str, zone: &TimeZone) -> Result<Zoned, String> {
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return Ok(instant.to_zoned_datetime(zone.clone()));
    }
    let wall: DateTime = text.parse().map_err(|_| {
        format!("{text:?} is not an RFC 3339 timestamp (like 2026-03-29T08:30:00+02:00)")
    })?;
    wall.to_zoned_datetime(zone.clone())
        .map_err(|error| format!("{text:?} has no instant in its zone: {error}"))
}

/// A component's value at a local time: a number in the component's unit, or for the weekend
/// flag 1 (Saturday, Sunday) or 0.
pub fn value(part: Part, at: &Zoned) -> f64 {
    let hours = f64::from(at.hour())
        + f64::from(at.minute()) / 60.0
        + (f64::from(at.second()) + f64::from(at.subsec_nanosecond()) * 1e-9) / 3600.0;
    match part {
        Part::TimeOfDay => hours * 60.0,
        Part::HourOfWeek => f64::from(at.weekday().to_monday_zero_offset()) * 24.0 + hours,
        Part::Weekend => f64::from(u8::from(at.weekday().to_monday_zero_offset() >= 5)),
        Part::DayOfYear => f64::from(at.day_of_year() - 1) + hours / 24.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, zone_name: &str) -> Zoned {
        local(text, &zone(zone_name).unwrap()).unwrap()
    }

    #[test]
    fn an_instant_is_seen_in_the_fields_zone() {
        // 06:30 UTC in summer is 08:30 in Berlin (CEST, +02:00).
        let morning = at("2026-07-01T06:30:00Z", "Europe/Berlin");
        assert_eq!(value(Part::TimeOfDay, &morning), 510.0);
        // In winter Berlin is +01:00.
        let winter = at("2026-01-01T06:30:00Z", "Europe/Berlin");
        assert_eq!(value(Part::TimeOfDay, &winter), 450.0);
        // A half-hour zone: India is +05:30.
        let india = at("2026-01-01T00:00:00Z", "Asia/Kolkata");
        assert_eq!(value(Part::TimeOfDay, &india), 330.0);
    }

    #[test]
    fn a_wall_clock_time_is_read_in_the_fields_zone_across_dst() {
        // New York springs forward on 2026-03-08 at 02:00: 02:30 does not exist and moves on
        // to 03:30 EDT.
        let gap = at("2026-03-08T02:30:00", "America/New_York");
        assert_eq!(value(Part::TimeOfDay, &gap), 210.0);
        assert_eq!(gap.offset().seconds(), -4 * 3600);
        // It falls back on 2026-11-01: 01:30 happens twice; the earlier (EDT) is taken.
        let fold = at("2026-11-01T01:30:00", "America/New_York");
        assert_eq!(fold.offset().seconds(), -4 * 3600);
        // Berlin's last Sunday of March: 02:30 does not exist.
        let berlin = at("2026-03-29T02:30:00", "Europe/Berlin");
        assert_eq!(value(Part::TimeOfDay, &berlin), 210.0);
    }

    #[test]
    fn hour_of_week_runs_through_midnight_and_weekend_is_local() {
        // Sunday 2026-03-01 23:30 and Monday 00:30, Berlin.
        let sunday = at("2026-03-01T23:30:00+01:00", "Europe/Berlin");
        let monday = at("2026-03-02T00:30:00+01:00", "Europe/Berlin");
        assert_eq!(value(Part::HourOfWeek, &sunday), 167.5);
        assert_eq!(value(Part::HourOfWeek, &monday), 0.5);
        assert_eq!(value(Part::Weekend, &sunday), 1.0);
        assert_eq!(value(Part::Weekend, &monday), 0.0);
        // Friday 23:30 UTC is already Saturday in Berlin.
        let friday_utc = at("2026-03-06T23:30:00Z", "Europe/Berlin");
        assert_eq!(value(Part::Weekend, &friday_utc), 1.0);
        assert_eq!(
            value(Part::DayOfYear, &at("2026-01-01T12:00:00", "UTC")),
            0.5
        );
    }

    #[test]
    fn bad_zones_and_timestamps_are_refused() {
        assert!(zone("Mars/Olympus").is_err());
        let utc = zone("UTC").unwrap();
        assert!(local("yesterday", &utc).is_err());
        assert!(local("2026-02-30T00:00:00Z", &utc).is_err());
    }
}
