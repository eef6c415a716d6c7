//! RFC 3339 times ↔ milliseconds since the Unix epoch (UTC, proleptic
//! Gregorian calendar), without a time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// This server's clock, in ms since the epoch (0 before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-05-01T12:34:56.789Z`.
pub(crate) fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = date_of_day(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Parses an RFC 3339 date-time (`2026-05-01T12:34:56Z`,
/// `2026-05-01t12:34:56.5+02:00`); fractions finer than a millisecond are
/// cut off.
pub(crate) fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("{text:?} is not an RFC 3339 time ({why})");
    let b = text.as_bytes();
    if b.len() < 20 || !b.is_ascii() {
        return Err(bad("expected like 2026-05-01T12:34:56Z"));
    }
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let s = &b[from..from + len];
        if s.iter().all(u8::is_ascii_digit) {
            Ok(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(bad("a digit is expected"))
        }
    };
    let sep = |at: usize, allowed: &[u8]| {
        if allowed.contains(&b[at]) {
            Ok(())
        } else {
            Err(bad("a separator is misplaced"))
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    let mut at = 19;
    let mut milli = 0;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 3 {
                milli = milli * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        let digits = at - start;
        if digits == 0 {
            return Err(bad("a fraction needs digits"));
        }
        for _ in digits..3 {
            milli *= 10;
        }
    }
    let offset_min = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return Err(bad("the offset is out of range"));
            }
            if sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return Err(bad("it needs a time zone: Z or ±hh:mm")),
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // A leap second (:60) counts as the next minute's first second.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let days = day_of_date(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(seconds * 1000 + milli)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date. Years are counted from March so that
/// the leap day ends a year; an era is 400 years, 146,097 days.
fn day_of_date(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01: the inverse of
/// [`day_of_date`].
fn date_of_day(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        // Proves the calendar arithmetic both ways on the epoch, a leap
        // day, a time before 1970, offsets and fractions.
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339("2000-02-29T12:34:56.789Z"),
            Ok(951_827_696_789)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29t14:34:56.78912+02:00"),
            Ok(951_827_696_789)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.9Z"), Ok(-100));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00-01:30"), Ok(5_400_000));
    }

    #[test]
    fn round_trips_and_refuses_bad_text() {
        // Proves format → parse is the identity over a wide range, and
        // malformed or impossible times are refused, never panicking.
        for ms in (-10_000_000_000_000i64..250_000_000_000_000).step_by(7_777_777_777_777) {
            assert_eq!(parse_rfc3339(&format_ms(ms)), Ok(ms), "{ms}");
        }
        for bad in [
            "",
            "2026-05-01",
            "2026-05-01T12:34:56",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:34:56.Z",
            "2026-05-01T12:34:56+0200",
            "2026-05-01T12:34:56+24:00",
            "2026-05-01T12:34:56Zjunk",
            "2026-05-01T12:34:5éZ",
            "+026-05-01T12:34:56Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }
}
