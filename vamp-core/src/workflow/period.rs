//! ISO-8601 periods as workflow schedules use them (spec §1.13): `P1Y2M3DT4H5M6S`, `P2W`,
//! `PT0.5S`, added to a date-time on the calendar (a month after 31 January is the end of
//! February, as chrono counts months).
//!
//! Hand-written: the crates that read ISO-8601 durations either drop the calendar part (years,
//! months) or bring a second date-time library; this is forty lines over chrono.

use chrono::{DateTime, Days, Months, TimeDelta, Utc};

/// A period: calendar months and days, and a time part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Years × 12 + months.
    pub months: u32,
    /// Weeks × 7 + days.
    pub days: u64,
    /// The time part (hours, minutes, seconds), to the millisecond.
    pub time: TimeDelta,
}

impl Period {
    /// Reads `text`; `None` when it is not an ISO-8601 period with at least one non-zero part
    /// the DSL accepts ([`crate::model::is_valid_period`]).
    ///
    /// ```
    /// use vamp_core::workflow::Period;
    /// let p = Period::parse("P1DT2H30M").unwrap();
    /// assert_eq!((p.months, p.days, p.time.num_minutes()), (0, 1, 150));
    /// assert!(Period::parse("PT0S").is_none(), "a period must move time on");
    /// assert!(Period::parse("every minute").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Period> {
        if !crate::model::is_valid_period(text) {
            return None;
        }
        let body = text.strip_prefix('P')?;
        let (date, time) = body.split_once('T').unwrap_or((body, ""));
        let mut p = Period {
            months: 0,
            days: 0,
            time: TimeDelta::zero(),
        };
        for (number, unit) in parts(date) {
            let n: u64 = number.parse().ok()?;
            match unit {
                'Y' => {
                    p.months = p
                        .months
                        .checked_add(u32::try_from(n).ok()?.checked_mul(12)?)?
                }
                'M' => p.months = p.months.checked_add(u32::try_from(n).ok()?)?,
                'W' => p.days = p.days.checked_add(n.checked_mul(7)?)?,
                _ => p.days = p.days.checked_add(n)?,
            }
        }
        for (number, unit) in parts(time) {
            let n: f64 = number.parse().ok()?;
            let seconds = n * match unit {
                'H' => 3600.0,
                'M' => 60.0,
                _ => 1.0,
            };
            #[expect(
                clippy::cast_possible_truncation,
                reason = "bounded below: a period of more than 290 million years is refused"
            )]
            let millis = (seconds * 1000.0).round() as i64;
            p.time = p.time.checked_add(&TimeDelta::try_milliseconds(millis)?)?;
        }
        (p.months > 0 || p.days > 0 || p.time > TimeDelta::zero()).then_some(p)
    }

    /// `at` plus this period; `None` past the end of time.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use vamp_core::workflow::Period;
    /// let jan31 = Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap();
    /// let next = Period::parse("P1M").unwrap().after(jan31).unwrap();
    /// assert_eq!(next, Utc.with_ymd_and_hms(2027, 2, 28, 12, 0, 0).unwrap());
    /// ```
    pub fn after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        at.checked_add_months(Months::new(self.months))?
            .checked_add_days(Days::new(self.days))?
            .checked_add_signed(self.time)
    }

    /// The length of the period from `at` (months and days counted on the calendar).
    pub fn from(&self, at: DateTime<Utc>) -> Option<TimeDelta> {
        Some(self.after(at)? - at)
    }
}

/// `(number, unit)` pairs of one half of a period (`1D`, `2.5S`).
fn parts(text: &str) -> impl Iterator<Item = (&str, char)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
        let unit = rest[end..].chars().next()?;
        let number = &rest[..end];
        rest = &rest[end + unit.len_utf8()..];
        Some((number, unit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn every_part_counts() {
        let p = Period::parse("P1Y2M3W4DT5H6M7.5S").expect("valid");
        assert_eq!(p.months, 14);
        assert_eq!(p.days, 25);
        assert_eq!(
            p.time.num_milliseconds(),
            ((5 * 60 + 6) * 60 + 7) * 1000 + 500
        );
        let at = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(
            Period::parse("PT30S").unwrap().after(at),
            Some(at + TimeDelta::seconds(30))
        );
    }

    #[test]
    fn what_is_not_a_period_is_refused() {
        for bad in [
            "",
            "P",
            "PT",
            "P0D",
            "PT0S",
            "1D",
            "P1S",
            "PT1D",
            "P1.5D",
            "P99999999999Y",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Written from its parts, a period reads back to them, and always moves time on.
        #[test]
        fn periods_read_back_and_move_time_on(
            d in 0u64..400, h in 0u64..48, m in 0u64..120, s in 0u64..120, months in 0u32..30
        ) {
            prop_assume!(d + h + m + s + u64::from(months) > 0);
            let text = format!("P{months}M{d}DT{h}H{m}M{s}S");
            let p = Period::parse(&text).expect("valid");
            prop_assert_eq!(p.months, months);
            prop_assert_eq!(p.days, d);
            prop_assert_eq!(p.time.num_seconds(), i64::try_from((h * 60 + m) * 60 + s).unwrap());
            let at = Utc.with_ymd_and_hms(2027, 1, 31, 0, 0, 0).unwrap();
            prop_assert!(p.after(at).expect("in range") > at);
        }

        /// Any text: an answer, never a panic.
        #[test]
        fn any_text_reads_or_is_refused(text in "P[0-9YMWDTHS.]{0,12}") {
            let _ = Period::parse(&text);
        }
    }
}
