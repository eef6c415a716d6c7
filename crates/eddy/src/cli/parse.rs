//! Parsers of the values given on the command line: durations, sizes,
//! RFC 3339 times, positions in a topic (`--from`, `--start`, `--to`),
//! headers and backoff schedules.
//!
//! Each is a plain function usable as a clap `value_parser`, so a bad value
//! is a usage error (exit 2) that names the accepted forms.

use eddy_bus::{Backoff, Offset, StartAt, check_header_name};

/// Milliseconds per unit, by suffix.
const DURATION_UNITS: [(&str, u64); 6] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

const DURATION_FORMS: &str = "a number with a unit (ms, s, m, h, d, w), e.g. `500ms`, `30s`, \
                              `7d` or `1h30m`";

/// A duration such as `500ms`, `30s`, `7d` or `1h30m`, in milliseconds.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration: use {DURATION_FORMS}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let (_, per) = DURATION_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(bad)?;
        total = n
            .checked_mul(*per)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A byte size: a number, optionally with a unit — `B`, decimal `KB`,
/// `MB`, `GB`, `TB` or binary `KiB`, `MiB`, `GiB`, `TiB` (case-insensitive).
pub fn size_bytes(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size: use a number of bytes, optionally with a unit, \
             e.g. `500MB`, `2GiB` or `1048576`"
        )
    };
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let per: u64 = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A `--header name=value`.
pub fn header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not `name=value`, e.g. `--header tenant=acme`"))?;
    check_header_name(name).map_err(|e| e.to_string())?;
    Ok((name.to_string(), value.to_string()))
}

/// A time in RFC 3339 form, e.g. `2026-05-01T12:00:00Z` or
/// `2026-05-01T14:00:00.250+02:00`, as milliseconds since the Unix epoch.
pub fn rfc3339_ms(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{text:?} is not an RFC 3339 time such as `2026-05-01T12:00:00Z` \
             or `2026-05-01T14:00:00.250+02:00`"
        )
    };
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = b.get(range)?;
        if s.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(s).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if b.len() < 20 || !sep(4, b"-") || !sep(7, b"-") || !sep(10, b"Tt ") {
        return Err(bad());
    }
    if !sep(13, b":") || !sep(16, b":") {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (year, month, day, hour, minute, second)
    else {
        return Err(bad());
    };
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        // Milliseconds: the first three digits, the rest dropped.
        let mut ms_digits = b[i + 1..i + 1 + digits.min(3)].to_vec();
        ms_digits.resize(3, b'0');
        millis = std::str::from_utf8(&ms_digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(bad)?;
        i += 1 + digits;
    }
    let offset_minutes = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let d = |x: u8| i64::from(x - b'0');
            let (oh, om) = (d(*h1) * 10 + d(*h2), d(*m1) * 10 + d(*m2));
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return Err(bad()),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= month_days[(month - 1) as usize]
        && hour <= 23
        && minute <= 59
        && second <= 60; // a leap second is read as the next second's start
    if !valid {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// `utc::civil_from_days`, after Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12; // month counted from March
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A position in a topic's partitions, as given to `--from`, `--start` or
/// `--to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first event still held (`beginning`, `earliest`).
    Beginning,
    /// After the last event (`end`, `latest`).
    End,
    /// This offset (`42`).
    Offset(u64),
    /// The first event appended at or after this time (an RFC 3339 time).
    Time(i64),
    /// The first event appended at or after this long before now
    /// (`10m-ago`).
    Ago(u64),
}

/// Forms accepted by [`position`], for help texts.
pub const POSITION_FORMS: &str = "`beginning` (or `earliest`), `end` (or `latest`), an offset \
                                  (`42`), an RFC 3339 time (`2026-05-01T12:00:00Z`) or a \
                                  duration before now (`15m-ago`)";

/// Parses a [`Position`].
pub fn position(text: &str) -> Result<Position, String> {
    let t = text.trim();
    match t {
        "beginning" | "earliest" | "start" => return Ok(Position::Beginning),
        "end" | "latest" => return Ok(Position::End),
        _ => {}
    }
    if let Some(d) = t.strip_suffix("-ago").or_else(|| t.strip_suffix(" ago")) {
        return duration_ms(d).map(Position::Ago);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(Position::Offset)
            .map_err(|_| format!("{text:?} is too large an offset"));
    }
    if t.len() >= 20 {
        return rfc3339_ms(t).map(Position::Time);
    }
    Err(format!("{text:?} is not a position: use {POSITION_FORMS}"))
}

impl Position {
    /// Where a subscription starts or seeks to; `now_ms` resolves `Ago`.
    pub fn start_at(self, now_ms: i64) -> StartAt {
        match self {
            Position::Beginning => StartAt::Earliest,
            Position::End => StartAt::Latest,
            Position::Offset(o) => StartAt::Offset(Offset(o)),
            Position::Time(t) => StartAt::Time(t),
            Position::Ago(ms) => StartAt::Time(ago(now_ms, ms)),
        }
    }
}

/// `ms` before `now_ms`, saturating.
pub fn ago(now_ms: i64, ms: u64) -> i64 {
    now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Forms accepted by [`backoff`], for help texts.
pub const BACKOFF_FORMS: &str = "`fixed(5s)`, `exponential(100ms,2)` (initial delay, factor), \
                                 `quadratic(1s)` (base × attempt²) or `list(1s,10s,1m)`";

/// A backoff schedule: `fixed(5s)`, `exponential(100ms,2)`,
/// `quadratic(1s)` or `list(1s,10s,1m)`.
pub fn backoff(text: &str) -> Result<Backoff, String> {
    let bad = || format!("{text:?} is not a backoff: use {BACKOFF_FORMS}");
    let t = text.trim();
    let (kind, args) = t
        .strip_suffix(')')
        .and_then(|t| t.split_once('('))
        .ok_or_else(bad)?;
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    let one_duration = || match args.as_slice() {
        [d] => duration_ms(d),
        _ => Err(bad()),
    };
    match kind.trim() {
        "fixed" => Ok(Backoff::Fixed {
            delay_ms: one_duration()?,
        }),
        "quadratic" => Ok(Backoff::Quadratic {
            base_ms: one_duration()?,
        }),
        "exponential" | "exp" => {
            let (initial, factor) = match args.as_slice() {
                [d] => (duration_ms(d)?, 2),
                [d, f] => (
                    duration_ms(d)?,
                    f.trim_start_matches(['x', '×'])
                        .parse()
                        .map_err(|_| bad())?,
                ),
                _ => return Err(bad()),
            };
            Ok(Backoff::Exponential {
                initial_ms: initial,
                factor,
            })
        }
        "list" => Ok(Backoff::List {
            delays_ms: args
                .iter()
                .map(|d| duration_ms(d))
                .collect::<Result<_, _>>()?,
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        // Proves units, compounds and refusals of `duration_ms`.
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("30s"), Ok(30_000));
        assert_eq!(duration_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(duration_ms("1h30m"), Ok(5_400_000));
        for bad in ["", "30", "s", "1x", "1.5s", "-1s", "99999999999999999999s"] {
            assert!(duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        // Proves decimal and binary units and refusals of `size_bytes`.
        assert_eq!(size_bytes("1048576"), Ok(1 << 20));
        assert_eq!(size_bytes("500MB"), Ok(500_000_000));
        assert_eq!(size_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(size_bytes("3 kib"), Ok(3072));
        for bad in ["", "MB", "1.5GB", "5 parsecs", "99999999999TiB"] {
            assert!(size_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        // Proves the epoch, fractions, offsets and a leap day convert to the
        // right instant, and malformed or impossible dates are refused.
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339_ms("2000-02-29T12:34:56.789Z"), Ok(951_827_696_789));
        assert_eq!(
            rfc3339_ms("2000-02-29T14:34:56.7891+02:00"),
            Ok(951_827_696_789)
        );
        assert_eq!(rfc3339_ms("1969-12-31T23:00:00-01:00"), Ok(0));
        assert_eq!(rfc3339_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
        for bad in [
            "2001-02-29T00:00:00Z",
            "2000-13-01T00:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T24:00:00Z",
            "2000-01-01T00:00:00.Z",
            "2000-01-01T00:00:00+0200",
            "yesterday",
        ] {
            assert!(rfc3339_ms(bad).is_err(), "{bad:?}");
        }
        // Round trip with the formatter over a range of instants.
        for ms in [-86_400_001, 0, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(rfc3339_ms(&crate::utc::format_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn positions() {
        // Proves every form of a position parses to its variant.
        assert_eq!(position("beginning"), Ok(Position::Beginning));
        assert_eq!(position("earliest"), Ok(Position::Beginning));
        assert_eq!(position("end"), Ok(Position::End));
        assert_eq!(position("42"), Ok(Position::Offset(42)));
        assert_eq!(position("15m-ago"), Ok(Position::Ago(900_000)));
        assert_eq!(position("1970-01-01T00:00:01Z"), Ok(Position::Time(1000)));
        assert!(position("soon").is_err());
        assert_eq!(Position::Ago(1000).start_at(5000), StartAt::Time(4000));
    }

    #[test]
    fn backoffs_and_headers() {
        // Proves each backoff form and the header syntax.
        assert_eq!(backoff("fixed(5s)"), Ok(Backoff::Fixed { delay_ms: 5000 }));
        assert_eq!(
            backoff("exponential(100ms,3)"),
            Ok(Backoff::Exponential {
                initial_ms: 100,
                factor: 3
            })
        );
        assert_eq!(
            backoff("exponential(1s)"),
            Ok(Backoff::Exponential {
                initial_ms: 1000,
                factor: 2
            })
        );
        assert_eq!(
            backoff("quadratic(1s)"),
            Ok(Backoff::Quadratic { base_ms: 1000 })
        );
        assert_eq!(
            backoff("list(1s, 10s,1m)"),
            Ok(Backoff::List {
                delays_ms: vec![1000, 10_000, 60_000]
            })
        );
        for bad in ["fixed", "fixed()", "linear(1s)", "list(1s,x)"] {
            assert!(backoff(bad).is_err(), "{bad:?}");
        }
        assert_eq!(header("tenant=a=b"), Ok(("tenant".into(), "a=b".into())));
        assert!(header("Tenant=a").is_err());
        assert!(header("tenant").is_err());
    }
}
