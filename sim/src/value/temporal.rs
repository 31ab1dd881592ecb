//! Temporal values as text: canonical stored forms and the formats SQL Server accepts.

use chrono::{Datelike, NaiveDate};

/// Days since 0001-01-01 of a calendar date.
pub fn days_of(d: NaiveDate) -> i64 {
    d.num_days_from_ce() as i64 - 1
}

/// The calendar date of days since 0001-01-01.
pub fn date_of(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(days + 1).ok()?)
}

/// `HH:MM:SS.fffffff` of ticks since midnight.
pub fn format_time(ticks: u64) -> String {
    let secs = ticks / 10_000_000;
    let frac = ticks % 10_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:07}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        frac
    )
}

/// Canonical stored text of a datetime2 value.
pub fn format_datetime2(days: i64, ticks: u64) -> String {
    let d = date_of(days)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "0001-01-01".into());
    format!("{d} {}", format_time(ticks))
}

/// Canonical stored text of a datetimeoffset value (local time, then the offset).
pub fn format_datetimeoffset(days: i64, ticks: u64, offset: i16) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.unsigned_abs();
    format!(
        "{} {sign}{:02}:{:02}",
        format_datetime2(days, ticks),
        o / 60,
        o % 60
    )
}

pub(super) fn parse_time_part(s: &str) -> Option<u64> {
    let s = s.trim();
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut parts = hms.split(':');
    let h: u64 = parts.next()?.trim().parse().ok()?;
    let m: u64 = parts.next()?.trim().parse().ok()?;
    let sec: u64 = match parts.next() {
        Some(p) => p.trim().parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let frac = frac.trim();
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let mut f: u64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        if i < 7 {
            f = f * 10 + (b - b'0') as u64;
        }
    }
    let digits = frac.len().min(7);
    f *= 10u64.pow((7 - digits) as u32);
    Some(((h * 60 + m) * 60 + sec) * 10_000_000 + f)
}

pub(super) fn parse_date_part(s: &str) -> Option<i64> {
    let s = s.trim();
    let d = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        NaiveDate::parse_from_str(s, "%Y%m%d").ok()?
    } else {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?
    };
    Some(days_of(d))
}

/// Parses a date/time string as SQL Server accepts it for datetime2 and datetimeoffset:
/// `YYYY-MM-DD[ T]HH:MM[:SS[.f…]]`, `YYYYMMDD …`, a date alone, or a time alone (on
/// 1900-01-01), with an optional `Z` or `±HH:MM` offset. Returns days, ticks, offset minutes.
pub fn parse_datetime_text(s: &str) -> Option<(i64, u64, Option<i16>)> {
    let s = s.trim();
    let (body, offset) = split_offset(s)?;
    let body = body.trim();
    let (date, time) = match body.find(['T', ' ']) {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None if body.contains(':') => ("1900-01-01", Some(body)),
        None => (body, None),
    };
    let days = parse_date_part(date)?;
    let ticks = match time {
        Some(t) if !t.trim().is_empty() => parse_time_part(t)?,
        _ => 0,
    };
    Some((days, ticks, offset))
}

pub(super) fn split_offset(s: &str) -> Option<(&str, Option<i16>)> {
    if let Some(b) = s.strip_suffix('Z') {
        return Some((b, Some(0)));
    }
    // An offset is the last `+HH:MM` / `-HH:MM` after the time part.
    if let Some(p) = s.rfind(['+', '-']) {
        let tail = &s[p + 1..];
        if p > 10 && tail.len() == 5 && tail.as_bytes()[2] == b':' {
            let h: i16 = tail[..2].parse().ok()?;
            let m: i16 = tail[3..].parse().ok()?;
            if h > 14 || m > 59 {
                return None;
            }
            let v = h * 60 + m;
            return Some((&s[..p], Some(if s.as_bytes()[p] == b'-' { -v } else { v })));
        }
    }
    Some((s, None))
}

/// Parses a time of day (`HH:MM[:SS[.f…]]`) to ticks.
pub fn parse_time_text(s: &str) -> Option<u64> {
    parse_time_part(s)
}
