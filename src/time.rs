//! Wall-clock time, RFC 3339 timestamps and human durations.
//!
//! Owns every conversion between Unix seconds and text that agent-exec
//! writes into job records and log lines, and the parsing of duration
//! arguments such as `--older-than 30d`.
//!
//! Timestamps: we emit exactly one shape, `YYYY-MM-DDTHH:MM:SSZ` (UTC,
//! whole seconds, always 20 ASCII bytes). Fixed width keeps records
//! greppable and lets lexical order equal time order. `parse_ts` reads that
//! shape back, and also tolerates an optional fractional part (`.123`,
//! truncated towards the past) and a `+00:00` offset in place of `Z`, since
//! those are what other RFC 3339 writers produce for UTC. Any other offset,
//! lowercase `t`/`z`, a space separator, leap second `:60`, or a year outside
//! 0000..=9999 is rejected (`None`): a silently misread timestamp is worse
//! than a refused one.
//!
//! Invariants:
//! - `format_ts`/`write_ts` never panic; instants outside the four-digit
//!   year range are clamped to `0000-01-01T00:00:00Z` or
//!   `9999-12-31T23:59:59Z` so the output is always exactly 20 bytes.
//! - `parse_ts(&format_ts(t)) == Some(t)` for every `t` in that range.
//! - Calendar is proleptic Gregorian, as RFC 3339 requires.
//!
//! Durations: `<n>` (seconds) or `<n>` followed by one of `ms s m h d w`
//! (lowercase), where `<n>` is plain decimal digits with an optional
//! fraction (`1.5s`): no sign, no `_`, no exponent, no space before the
//! unit, no compound forms like `1h30m`. Surrounding whitespace is
//! trimmed, as 0.2.3 trimmed `gc --older-than` (callers echo the value as
//! given, as 0.2.3 did). The result is milliseconds (`parse_duration_ms`) or whole
//! seconds; values beyond u64 milliseconds saturate to "never", and every
//! deadline is computed with `deadline_after`, so no duration can
//! overflow a clock.
//!
//! Rejected alternatives: chrono/time/humantime (the project keeps its
//! dependency list to a handful of crates, and the few conversions here are
//! short); libc `gmtime_r`/`strftime` (needs `unsafe`, and behaves
//! differently across platforms for far-off years).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Seconds from 1970-01-01 to 0000-01-01T00:00:00Z (negative).
const MIN_TS: i64 = -62_167_219_200;
/// Seconds from 1970-01-01 to 9999-12-31T23:59:59Z.
const MAX_TS: i64 = 253_402_300_799;

const SECS_PER_DAY: i64 = 86_400;

/// Current system time in whole Unix seconds. A clock set before 1970 gives
/// a negative value (rounded towards the past) instead of a panic.
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            // Floor, so that e.g. -0.5s is second -1, as for positive times.
            let extra = i64::from(d.subsec_nanos() > 0);
            secs.saturating_add(extra).saturating_neg()
        }
    }
}

/// Current system time in Unix milliseconds; 0 if the clock is before 1970
/// (an unsigned type cannot say more, and callers use this for durations
/// and ordering, where a stuck clock is harmless).
pub fn now_unix_ms() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

/// Current system time in Unix nanoseconds (negative before 1970).
pub fn now_unix_ns() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_ts() -> String {
    format_ts(now_unix())
}

/// `unix_secs` as `YYYY-MM-DDTHH:MM:SSZ` (UTC). Clamped to years
/// 0000..=9999; see the module header.
pub fn format_ts(unix_secs: i64) -> String {
    let mut buf = [0u8; 20];
    write_ts(&mut buf, unix_secs);
    // The buffer is pure ASCII, so byte-to-char is exact; this avoids a
    // fallible UTF-8 check that could never fail.
    buf.iter().map(|&b| char::from(b)).collect()
}

/// Writes the same 20 bytes as `format_ts` into `buf` without allocating,
/// for callers that stamp every log line.
pub fn write_ts(buf: &mut [u8; 20], unix_secs: i64) {
    let t = unix_secs.clamp(MIN_TS, MAX_TS);
    let days = t.div_euclid(SECS_PER_DAY);
    let secs_of_day = t.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // The clamp keeps year within 0..=9999, so every field fits its width.
    put_digits(&mut buf[0..4], year);
    buf[4] = b'-';
    put_digits(&mut buf[5..7], month);
    buf[7] = b'-';
    put_digits(&mut buf[8..10], day);
    buf[10] = b'T';
    put_digits(&mut buf[11..13], secs_of_day / 3600);
    buf[13] = b':';
    put_digits(&mut buf[14..16], secs_of_day / 60 % 60);
    buf[16] = b':';
    put_digits(&mut buf[17..19], secs_of_day % 60);
    buf[19] = b'Z';
}

/// Right-aligned, zero-padded decimal of a non-negative `v` filling `out`.
fn put_digits(out: &mut [u8], mut v: i64) {
    for slot in out.iter_mut().rev() {
        // rem_euclid keeps the digit in 0..=9 even if a caller broke the
        // non-negative promise; the cast cannot truncate.
        *slot = b'0' + v.rem_euclid(10) as u8;
        v /= 10;
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339) into
/// Unix seconds. Returns `None` for anything else, including impossible
/// dates such as `2023-02-29`. We write `Z`; an offset is another
/// writer's (a record edited by hand), and is the same instant.
pub fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Sub-second precision is dropped: records hold whole seconds.
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset)
}

/// All-ASCII-digit field to a number; `None` on any other byte.
fn digits(field: &[u8]) -> Option<i64> {
    field.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Calendar arithmetic. The Gregorian calendar repeats every 400 years
// (an "era" of exactly 146_097 days). Counting years from March makes the
// leap day the last day of the counting year, so month lengths from March
// onwards follow a fixed 5-month pattern (31 30 31 30 31) that
// `(153 * m + 2) / 5` reproduces without a table. Both directions are pure
// integer arithmetic with floor division, valid for negative days too.

/// Days between 1970-01-01 and 0000-03-01 (the start of era 0).
const EPOCH_SHIFT: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years start in March here, so January and February belong to the
    // previous counting year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let month_from_march = (month + 9) % 12; // Mar=0 .. Feb=11
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

/// Inverse of `days_from_civil`: (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z - era * DAYS_PER_ERA; // 0..=146_096
                                             // Remove the leap days accumulated before this day within the era
                                             // (one per 4 years, minus one per century, plus the 400th), which makes
                                             // every year exactly 365 days long for the division.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a duration into whole seconds (rounded down): see
/// `parse_duration_ms` for the forms.
pub fn parse_duration(s: &str) -> Result<u64> {
    parse_duration_ms(s).map(|ms| ms / 1000)
}

/// Parses `500ms`, `1.5s`, `5m`, `2h`, `1d`, `2w` or a bare number of
/// seconds (`3600`, `0.25`) into milliseconds. Every duration flag and
/// config key takes these forms. Values too large for a u64 of
/// milliseconds (585 million years) saturate: they mean "never" to every
/// caller, which must add them to clocks with `deadline_after`.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    parse_duration_inner(s.trim()).ok_or_else(|| {
        Error::InvalidDuration(format!(
            "invalid duration: {s}; expected formats: 500ms, 1.5s, 5m, 2h, 1d, 1w (a bare number is seconds)"
        ))
    })
}

/// A JSON number of seconds (HTTP and MCP `until`, `timeout`, ...) as
/// the duration text the command line would be given; None when it is
/// negative or not finite. Its shortest decimal form, except where that
/// would pass the parser's 40 digits: a value too large for a u64 of
/// milliseconds becomes one that saturates as it does (so every cap
/// applies to 1e300 as to 1e20), and a positive value under a
/// millisecond becomes 1 ms, as the parser rounds one up.
pub fn seconds_text(s: f64) -> Option<String> {
    if !s.is_finite() || s < 0.0 {
        return None;
    }
    // -0 is 0 (it is no negative number): not "-0s", which no parser takes.
    let s = if s == 0.0 { 0.0 } else { s };
    Some(if s > 1e20 {
        "100000000000000000000s".to_string()
    } else if s > 0.0 && s < 1e-3 {
        "1ms".to_string()
    } else {
        format!("{s}s")
    })
}

fn parse_duration_inner(t: &str) -> Option<u64> {
    // One leading `+` is a positive number, as in 0.2.3; `-` is not.
    let t = t.strip_prefix('+').unwrap_or(t);
    let units: [(&str, u128); 6] = [
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
    ];
    let (number, unit_ms) = units
        .iter()
        .find_map(|(u, ms)| t.strip_suffix(u).map(|n| (n, *ms)))
        .unwrap_or((t, 1_000));
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    // Plain ASCII digits only (no further sign, `_` or exponent); a fraction
    // needs digits on both sides of the dot; at most 40 digits, which
    // bounds the arithmetic below to u128.
    let digits = |d: &str| d.bytes().all(|c| c.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(frac)
        || (number.contains('.') && frac.is_empty())
        || whole.len() + frac.len() > 40
    {
        return None;
    }
    let frac = &frac[..frac.len().min(9)];
    let int = |d: &str| {
        d.bytes().fold(0u128, |acc, c| {
            acc.saturating_mul(10).saturating_add(u128::from(c - b'0'))
        })
    };
    // A fraction of a millisecond rounds up: a positive duration never
    // becomes 0 (which means "no limit" for --timeout).
    let scale = 10u128.pow(frac.len() as u32);
    let ms = int(whole)
        .saturating_mul(unit_ms)
        .saturating_add(int(frac).saturating_mul(unit_ms).div_ceil(scale));
    // Digits past the ninth are below a nanosecond and not counted, but
    // a positive duration made only of them is still one (1 ms), not 0:
    // `--timeout 0.0000000001` ran with no limit.
    if ms == 0 && number.bytes().any(|c| c != b'0' && c != b'.') {
        return Some(1);
    }
    Some(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// `now + ms`, or None (no deadline) when that does not fit the clock:
/// a saturated duration means "never".
pub fn deadline_after(ms: u64) -> Option<std::time::Instant> {
    if ms == u64::MAX {
        return None;
    }
    std::time::Instant::now().checked_add(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_text_keeps_every_finite_non_negative_number_a_duration() {
        let ms = |s: f64| parse_duration_ms(&seconds_text(s).unwrap()).unwrap();
        assert_eq!(ms(0.0), 0);
        assert_eq!(ms(-0.0), 0);
        assert_eq!(ms(0.29), 290);
        assert_eq!(ms(2.5), 2_500);
        assert_eq!(ms(1e-300), 1);
        assert_eq!(ms(f64::MIN_POSITIVE), 1);
        for huge in [1e17, 1e20, 1e21, 1e100, 1e300, f64::MAX] {
            assert_eq!(ms(huge), u64::MAX, "{huge}");
        }
        for bad in [-1.0, -0.001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(seconds_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_and_neighbours() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_ts(86_399), "1970-01-01T23:59:59Z");
        assert_eq!(format_ts(86_400), "1970-01-02T00:00:00Z");
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn known_dates() {
        let cases: &[(i64, &str)] = &[
            (951_782_400, "2000-02-29T00:00:00Z"),
            (951_868_800, "2000-03-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (4_107_456_000, "2100-02-28T00:00:00Z"),
            (2_147_483_647, "2038-01-19T03:14:07Z"),
            (2_147_483_648, "2038-01-19T03:14:08Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"),
            (946_684_799, "1999-12-31T23:59:59Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
        ];
        for &(secs, text) in cases {
            assert_eq!(format_ts(secs), text, "format {secs}");
            assert_eq!(parse_ts(text), Some(secs), "parse {text}");
        }
    }

    #[test]
    fn leap_rules() {
        assert_eq!(parse_ts("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_ts("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_ts("2100-02-29T00:00:00Z"), None);
        assert_eq!(parse_ts("1900-02-29T00:00:00Z"), None);
        assert_eq!(parse_ts("2023-02-29T00:00:00Z"), None);
        // 2100 is not a leap year: Feb 28 is followed directly by Mar 1.
        assert_eq!(
            parse_ts("2100-03-01T00:00:00Z").unwrap() - parse_ts("2100-02-28T00:00:00Z").unwrap(),
            86_400
        );
    }

    #[test]
    fn clamps_outside_four_digit_years() {
        assert_eq!(format_ts(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_ts(MAX_TS + 1), "9999-12-31T23:59:59Z");
        assert_eq!(format_ts(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(format_ts(MIN_TS - 1), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn write_ts_matches_format_ts() {
        let mut buf = [b'x'; 20];
        for t in [0, -1, 1_700_000_000, MAX_TS, MIN_TS, 123_456_789_012] {
            write_ts(&mut buf, t);
            assert_eq!(&buf[..], format_ts(t).as_bytes());
        }
    }

    #[test]
    fn round_trip_many_values() {
        // A deterministic walk over the whole supported range, with step
        // sizes that hit every time-of-day and calendar position.
        let mut t = MIN_TS;
        let mut n = 0;
        while t <= MAX_TS {
            let s = format_ts(t);
            assert_eq!(s.len(), 20);
            assert_eq!(parse_ts(&s), Some(t), "{s}");
            t += 7_919_999 + (n % 86_400);
            n += 1;
        }
        assert!(n > 30_000);
        // Every day for ten years around 2000, two leap-century cases included.
        let start = parse_ts("1995-01-01T00:00:00Z").unwrap();
        for d in 0..3_700 {
            let t = start + d * 86_400 + (d * 37) % 86_400;
            assert_eq!(parse_ts(&format_ts(t)), Some(t));
        }
    }

    #[test]
    fn days_roundtrip_every_day_of_an_era() {
        for days in -800_000..-800_000 + 146_097 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parse_ts_accepts_fraction_and_offset() {
        assert_eq!(parse_ts("1970-01-01T00:00:01.999Z"), Some(1));
        assert_eq!(parse_ts("1970-01-01T00:00:01.5+00:00"), Some(1));
        assert_eq!(parse_ts("1970-01-01T00:00:01+00:00"), Some(1));
        // Truncation towards the past also before the epoch.
        assert_eq!(parse_ts("1969-12-31T23:59:59.9Z"), Some(-1));
        // Another offset is the same instant (gc took 01:00+01:00 for
        // unreadable, and judged the job by its updated_at).
        assert_eq!(parse_ts("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_ts("1969-12-31T22:30:00-01:30"), Some(0));
        assert_eq!(parse_ts("1970-01-01T00:00:00-00:00"), Some(0));
    }

    #[test]
    fn parse_ts_rejects() {
        for bad in [
            "",
            "1970-01-01T00:00:00",
            "1970-01-01 00:00:00Z",
            "1970-01-01t00:00:00Z",
            "1970-01-01T00:00:00z",
            "1970-01-01T00:00:00+24:00",
            "1970-01-01T00:00:00+01:60",
            "1970-01-01T00:00:00+0100",
            "1970-01-01T00:00:00+01",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00ZZ",
            "1970-01-01T00:00:00Z ",
            " 1970-01-01T00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-00-01T00:00:00Z",
            "1970-01-00T00:00:00Z",
            "1970-01-32T00:00:00Z",
            "1970-04-31T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:60:00Z",
            "1970-01-01T00:00:60Z",
            "+970-01-01T00:00:00Z",
            "19700-01-01T00:00:00Z",
            "1970-1-01T00:00:00Z",
            "1970/01/01T00:00:00Z",
            "197a-01-01T00:00:00Z",
            "1970-01-01T00:00:00.1é",
            "éééééééééééééééééééééé",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn now_is_sane() {
        let t = now_unix();
        assert!(t > 1_600_000_000);
        let ms = now_unix_ms();
        assert!(ms / 1000 >= 1_600_000_000);
        assert!(parse_ts(&now_ts()).is_some());
    }

    #[test]
    fn durations_valid() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("3600", 3600),
            ("3600s", 3600),
            ("60m", 3600),
            ("24h", 86_400),
            ("30d", 2_592_000),
            ("2w", 1_209_600),
            ("  7d\n", 604_800),
            ("007s", 7),
            ("18446744073709551", 18_446_744_073_709_551),
            ("1.5h", 5_400),
            ("1999ms", 1),
            // A leading `+`, as 0.2.3 took it (`gc --older-than +7d`).
            ("+7d", 604_800),
            ("+1", 1),
        ];
        for &(text, secs) in cases {
            assert_eq!(parse_duration(text).unwrap(), secs, "{text:?}");
        }
        for (text, ms) in [
            ("500ms", 500),
            ("1.5s", 1_500),
            ("1.5", 1_500),
            ("0.25", 250),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("0", 0),
            ("0.0s", 0),
            // Fractions of a millisecond round up: never 0 ("no limit").
            ("0.0001s", 1),
            ("0.0004", 1),
            ("1.0000000001s", 1_000),
            // Below a nanosecond is still positive.
            ("0.0000000001", 1),
            ("0.0000000001m", 1),
            ("0.00000000000000000001ms", 1),
            ("0.0000000000", 0),
            ("2.5ms", 3),
        ] {
            assert_eq!(parse_duration_ms(text).unwrap(), ms, "{text:?}");
        }
    }

    #[test]
    fn durations_invalid() {
        for bad in [
            "", " ", "d", "s", "ms", "-1", "+", "++1", "+-1", "+ 1", "1h30m", "30 d", "30D", "1y",
            "1_000", "0x10", "d30", "30dd", "３０d", "1e3", ".5", "1.", "1..5", "1.5.2", "nan",
            "inf", "1 ms", "1mss",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidDuration(_)), "{bad:?}");
            assert!(err
                .to_string()
                .starts_with(&format!("invalid duration: {bad};")));
        }
    }

    #[test]
    fn durations_saturate() {
        for big in [
            "18446744073709551616",
            "18446744073709551615",
            "18446744073709551615m",
            "30500568904944w",
            "9999999999999999999s",
            "99999999999999999999999999999d",
        ] {
            assert_eq!(parse_duration_ms(big).unwrap(), u64::MAX, "{big}");
            assert!(deadline_after(parse_duration_ms(big).unwrap()).is_none());
        }
        assert!(parse_duration_ms(&"9".repeat(41)).is_err());
        assert!(deadline_after(1000).is_some());
    }
}
