//! Values: decoded from PostgreSQL's binary format or from TDS parameters, encoded to TDS for a
//! declared T-SQL type, and rendered as PostgreSQL literals.
//!
//! Exactness contract:
//! - Text that PostgreSQL cannot hold (NUL, lone UTF-16 surrogates) is stored with an escape
//!   character ([`ESC`]): `ESC '0'` = NUL, `ESC 'u' XXXX` = a lone surrogate, `ESC ESC` = ESC.
//!   [`utf16_to_stored`] and [`stored_to_utf16`] are exact inverses.
//! - time, datetime2 and datetimeoffset are stored as canonical text with 7 fractional digits
//!   (`YYYY-MM-DD HH:MM:SS.fffffff [+HH:MM]`), which sorts like the value (datetimeoffset: per
//!   offset); 100 ns ticks survive.
//! - decimal/numeric carry an i128 mantissa: all 38 digits.

use crate::types::{decimal_bytes, time_bytes, Len, TsqlType};
use chrono::{Datelike, NaiveDate};

/// The escape character of stored text (a Unicode noncharacter, U+10FFFF).
pub const ESC: char = '\u{10FFFF}';

/// Ticks (100 ns) in a day.
pub const TICKS_PER_DAY: u64 = 864_000_000_000;
/// Days from 0001-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i64 = 730_119;
/// Days from 0001-01-01 to 1900-01-01 (datetime's epoch).
const DATETIME_EPOCH_DAYS: i64 = 693_595;

/// An exact decimal: `mantissa * 10^-scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dec {
    /// Unscaled value.
    pub mantissa: i128,
    /// Digits after the point.
    pub scale: u8,
}

impl Dec {
    /// Rescales, rounding half away from zero when digits are dropped.
    pub fn rescale(self, scale: u8) -> Option<Dec> {
        if scale >= self.scale {
            let m = self
                .mantissa
                .checked_mul(10i128.checked_pow((scale - self.scale) as u32)?)?;
            Some(Dec { mantissa: m, scale })
        } else {
            let div = 10i128.pow((self.scale - scale) as u32);
            let q = self.mantissa / div;
            let r = self.mantissa % div;
            let q = if r.abs() * 2 >= div {
                q + self.mantissa.signum()
            } else {
                q
            };
            Some(Dec { mantissa: q, scale })
        }
    }

    /// Parses `-123.4500`, `1e3` is not accepted.
    pub fn parse(s: &str) -> Option<Dec> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || frac.len() > 38 {
            return None;
        }
        let mut m: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            m = m.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        }
        Some(Dec {
            mantissa: if neg { -m } else { m },
            scale: frac.len() as u8,
        })
    }
}

impl std::fmt::Display for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let neg = self.mantissa < 0;
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let digits = if digits.len() <= scale {
            format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (i, fr) = digits.split_at(digits.len() - scale);
        if neg {
            f.write_str("-")?;
        }
        if scale == 0 {
            write!(f, "{i}")
        } else {
            write!(f, "{i}.{fr}")
        }
    }
}

/// A value in flight.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Boolean (PostgreSQL bool results).
    Bool(bool),
    /// Any integer (bit, tinyint .. bigint, rowversion).
    Int(i64),
    /// real or float.
    Float(f64),
    /// decimal, numeric, money.
    Decimal(Dec),
    /// Character data in stored form (escapes applied).
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// uniqueidentifier in RFC 4122 (display) byte order.
    Uuid([u8; 16]),
    /// date: days since 0001-01-01.
    Date(i64),
    /// time: ticks (100 ns) since midnight.
    Time(u64),
    /// datetime2 / datetime / smalldatetime: days since 0001-01-01 and ticks since midnight.
    DateTime(i64, u64),
    /// datetimeoffset: local days and ticks, and the offset in minutes.
    DateTimeOffset(i64, u64, i16),
}

/// Why a value cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

// ---------- text escapes ----------

/// UTF-16 code units (from TDS) to stored text; lossless for every sequence of units.
pub fn utf16_to_stored(units: &[u16]) -> String {
    let mut out = String::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok('\0') => {
                out.push(ESC);
                out.push('0');
            }
            Ok(ESC) => {
                out.push(ESC);
                out.push(ESC);
            }
            Ok(c) => out.push(c),
            Err(e) => {
                out.push(ESC);
                out.push_str(&format!("u{:04x}", e.unpaired_surrogate()));
            }
        }
    }
    out
}

/// UTF-16LE bytes (from TDS) to stored text.
pub fn utf16le_bytes_to_stored(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    utf16_to_stored(&units)
}

/// Appends stored text as UTF-16LE, undoing the escapes.
pub fn stored_to_utf16le(s: &str, out: &mut Vec<u8>) {
    if !s.contains(ESC) {
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        return;
    }
    let mut chars = s.chars().peekable();
    let mut buf = [0u16; 2];
    while let Some(c) = chars.next() {
        if c == ESC {
            match chars.next() {
                Some('0') => out.extend_from_slice(&[0, 0]),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let u = u16::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                    out.extend_from_slice(&u.to_le_bytes());
                }
                Some(ESC) | None => {
                    for u in ESC.encode_utf16(&mut buf) {
                        out.extend_from_slice(&u.to_le_bytes());
                    }
                }
                Some(other) => {
                    for u in other.encode_utf16(&mut buf) {
                        out.extend_from_slice(&u.to_le_bytes());
                    }
                }
            }
        } else {
            for u in c.encode_utf16(&mut buf) {
                out.extend_from_slice(&u.to_le_bytes());
            }
        }
    }
}

/// Stored text to UTF-16 code units.
pub fn stored_to_utf16(s: &str) -> Vec<u16> {
    let mut bytes = Vec::new();
    stored_to_utf16le(s, &mut bytes);
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Stored text to code page 1252 bytes (varchar); characters outside it become `?` as in SQL Server.
pub fn stored_to_cp1252(s: &str) -> Vec<u8> {
    let units = stored_to_utf16(s);
    let mut out = Vec::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) if (c as u32) < 0x80 => out.push(c as u8),
            Ok(c) => {
                let mut tmp = [0u8; 4];
                let (bytes, _, had_errors) =
                    encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut tmp));
                if had_errors || bytes.len() != 1 {
                    out.push(b'?');
                } else {
                    out.push(bytes[0]);
                }
            }
            Err(_) => out.push(b'?'),
        }
    }
    out
}

/// Code page 1252 bytes (varchar parameters) to stored text.
pub fn cp1252_to_stored(bytes: &[u8]) -> String {
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    let units: Vec<u16> = text.encode_utf16().collect();
    utf16_to_stored(&units)
}

// ---------- temporal text ----------

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

fn parse_time_part(s: &str) -> Option<u64> {
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

fn parse_date_part(s: &str) -> Option<i64> {
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

fn split_offset(s: &str) -> Option<(&str, Option<i16>)> {
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

// ---------- PostgreSQL binary decoding ----------

/// Decodes a PostgreSQL numeric in binary format.
pub fn decode_pg_numeric(raw: &[u8]) -> Result<Dec, ValueError> {
    if raw.len() < 8 {
        return err("truncated numeric");
    }
    let ndigits = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]) as i32;
    if sign == 0xC000 {
        return err("NaN cannot be represented in T-SQL");
    }
    if raw.len() < 8 + ndigits * 2 {
        return err("truncated numeric");
    }
    let mut total: i128 = 0;
    let mut exp = 4 * (weight - ndigits as i32 + 1) + dscale;
    for i in 0..ndigits {
        let mut d = u16::from_be_bytes([raw[8 + 2 * i], raw[9 + 2 * i]]) as i128;
        let mut base = 10_000i128;
        // The last base-10000 digit may reach past dscale (only with zeros): drop those places.
        if i + 1 == ndigits && (-3..0).contains(&exp) {
            let cut = 10i128.pow((-exp) as u32);
            d /= cut;
            base /= cut;
            exp = 0;
        }
        total = total
            .checked_mul(base)
            .and_then(|t| t.checked_add(d))
            .ok_or_else(|| ValueError("numeric too large".into()))?;
    }
    let overflow =
        || ValueError("Arithmetic overflow error converting numeric to data type numeric.".into());
    let mantissa = if ndigits == 0 {
        0
    } else if exp >= 0 {
        total
            .checked_mul(10i128.checked_pow(exp as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?
    } else {
        total / 10i128.checked_pow((-exp) as u32).ok_or_else(overflow)?
    };
    let mantissa = if sign == 0x4000 { -mantissa } else { mantissa };
    if dscale > 38 {
        return Dec {
            mantissa,
            scale: 38,
        }
        .rescale(38)
        .ok_or_else(overflow)
        .and(err("scale above 38"));
    }
    Ok(Dec {
        mantissa,
        scale: dscale as u8,
    })
}

/// Decodes one PostgreSQL binary value of type `ty` (NULL is `raw = None`).
pub fn decode_pg(
    ty: &tokio_postgres::types::Type,
    raw: Option<&[u8]>,
) -> Result<Value, ValueError> {
    use tokio_postgres::types::Type;
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let be8 = |r: &[u8]| -> Result<[u8; 8], ValueError> {
        r.try_into().map_err(|_| ValueError("bad length".into()))
    };
    let v = match *ty {
        Type::BOOL => Value::Bool(raw.first().copied().unwrap_or(0) != 0),
        Type::INT2 => Value::Int(i16::from_be_bytes(
            raw.try_into().map_err(|_| ValueError("bad int2".into()))?,
        ) as i64),
        Type::INT4 => Value::Int(i32::from_be_bytes(
            raw.try_into().map_err(|_| ValueError("bad int4".into()))?,
        ) as i64),
        Type::OID => Value::Int(u32::from_be_bytes(
            raw.try_into().map_err(|_| ValueError("bad oid".into()))?,
        ) as i64),
        Type::INT8 => Value::Int(i64::from_be_bytes(be8(raw)?)),
        Type::FLOAT4 => Value::Float(f32::from_be_bytes(
            raw.try_into()
                .map_err(|_| ValueError("bad float4".into()))?,
        ) as f64),
        Type::FLOAT8 => Value::Float(f64::from_be_bytes(be8(raw)?)),
        Type::NUMERIC => Value::Decimal(decode_pg_numeric(raw)?),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::XML
        | Type::UNKNOWN
        | Type::CHAR => Value::Text(
            String::from_utf8(raw.to_vec())
                .map_err(|_| ValueError("invalid UTF-8 from PostgreSQL".into()))?,
        ),
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::UUID => Value::Uuid(raw.try_into().map_err(|_| ValueError("bad uuid".into()))?),
        Type::DATE => {
            let d = i32::from_be_bytes(raw.try_into().map_err(|_| ValueError("bad date".into()))?);
            Value::Date(d as i64 + PG_EPOCH_DAYS)
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(be8(raw)?);
            let day_us = 86_400_000_000i64;
            let days = us.div_euclid(day_us);
            let rem = us.rem_euclid(day_us) as u64;
            Value::DateTime(days + PG_EPOCH_DAYS, rem * 10)
        }
        Type::TIME => {
            let us = i64::from_be_bytes(be8(raw)?);
            Value::Time(us as u64 * 10)
        }
        _ => {
            return err(format!(
                "PostgreSQL type {} has no T-SQL equivalent here",
                ty.name()
            ))
        }
    };
    Ok(v)
}

/// The T-SQL type of a computed result column of PostgreSQL type `ty` (no declared type known).
pub fn default_tsql_type(ty: &tokio_postgres::types::Type) -> TsqlType {
    use tokio_postgres::types::Type;
    match *ty {
        Type::BOOL => TsqlType::Bit,
        Type::INT2 => TsqlType::SmallInt,
        Type::INT4 => TsqlType::Int,
        Type::INT8 | Type::OID => TsqlType::BigInt,
        Type::NUMERIC => TsqlType::Decimal {
            precision: 38,
            scale: 0,
            numeric: false,
        },
        Type::FLOAT4 => TsqlType::Real,
        Type::FLOAT8 => TsqlType::Float,
        Type::BYTEA => TsqlType::VarBinary(Len::Max),
        Type::UUID => TsqlType::UniqueIdentifier,
        Type::DATE => TsqlType::Date,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => TsqlType::DateTime2(7),
        Type::TIME => TsqlType::Time(7),
        Type::XML => TsqlType::Xml,
        _ => TsqlType::NVarChar(Len::Max),
    }
}

// ---------- coercions ----------

fn as_i64(v: &Value) -> Result<i64, ValueError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::Decimal(d) => {
            let t = d.rescale(0).map(|d| d.mantissa).unwrap_or(0);
            i64::try_from(if d.scale > 0 {
                d.mantissa / 10i128.pow(d.scale as u32)
            } else {
                t
            })
            .map_err(|_| {
                ValueError(
                    "Arithmetic overflow error converting expression to data type bigint.".into(),
                )
            })
        }
        Value::Float(f) => Ok(f.trunc() as i64),
        Value::Text(s) => s.trim().parse().map_err(|_| {
            ValueError(format!(
                "Conversion failed when converting the nvarchar value '{s}' to data type int."
            ))
        }),
        other => err(format!("cannot convert {other:?} to an integer")),
    }
}

fn as_dec(v: &Value) -> Result<Dec, ValueError> {
    match v {
        Value::Decimal(d) => Ok(*d),
        Value::Int(i) => Ok(Dec {
            mantissa: *i as i128,
            scale: 0,
        }),
        Value::Bool(b) => Ok(Dec {
            mantissa: *b as i128,
            scale: 0,
        }),
        Value::Float(f) => Dec::parse(&format!("{f:.10}"))
            .ok_or_else(|| ValueError("float out of decimal range".into())),
        Value::Text(s) => Dec::parse(s).ok_or_else(|| {
            ValueError(format!(
                "Error converting data type nvarchar to numeric ('{s}')."
            ))
        }),
        other => err(format!("cannot convert {other:?} to decimal")),
    }
}

fn as_f64(v: &Value) -> Result<f64, ValueError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Decimal(d) => Ok(d.to_string().parse().unwrap_or(0.0)),
        Value::Text(s) => s.trim().parse().map_err(|_| {
            ValueError(format!(
                "Error converting data type nvarchar to float ('{s}')."
            ))
        }),
        other => err(format!("cannot convert {other:?} to float")),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => (*b as i32).to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Uuid(u) => uuid::Uuid::from_bytes(*u).to_string().to_uppercase(),
        Value::Date(d) => format_datetime2(*d, 0)[..10].to_string(),
        Value::Time(t) => format_time(*t),
        Value::DateTime(d, t) => format_datetime2(*d, *t),
        Value::DateTimeOffset(d, t, o) => format_datetimeoffset(*d, *t, *o),
        Value::Bytes(b) => format!("0x{}", hex(b)),
        Value::Null => String::new(),
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// date/time parts of a value: days, ticks, offset.
fn as_datetime(v: &Value) -> Result<(i64, u64, Option<i16>), ValueError> {
    match v {
        Value::DateTime(d, t) => Ok((*d, *t, None)),
        Value::Date(d) => Ok((*d, 0, None)),
        Value::DateTimeOffset(d, t, o) => Ok((*d, *t, Some(*o))),
        Value::Time(t) => Ok((DATETIME_EPOCH_DAYS, *t, None)),
        Value::Text(s) => parse_datetime_text(s).ok_or_else(|| {
            ValueError(format!(
                "Conversion failed when converting date and/or time from character string ('{s}')."
            ))
        }),
        other => err(format!("cannot convert {other:?} to a date/time")),
    }
}

/// Rounds ticks to `scale` fractional digits (half up), returning (ticks, carried day).
fn round_ticks(ticks: u64, scale: u8) -> (u64, bool) {
    let unit = 10u64.pow(7 - scale as u32);
    let t = (ticks + unit / 2) / unit * unit;
    if t >= TICKS_PER_DAY {
        (t - TICKS_PER_DAY, true)
    } else {
        (t, false)
    }
}

fn put_time(buf: &mut Vec<u8>, ticks: u64, scale: u8) {
    let n = ticks / 10u64.pow(7 - scale as u32);
    let len = time_bytes(scale) as usize;
    buf.extend_from_slice(&n.to_le_bytes()[..len]);
}

fn put_days(buf: &mut Vec<u8>, days: i64) {
    buf.extend_from_slice(&(days as u32).to_le_bytes()[..3]);
}

/// uniqueidentifier wire order: the first three groups little-endian.
pub fn uuid_to_wire(u: &[u8; 16]) -> [u8; 16] {
    let mut w = *u;
    w[0..4].reverse();
    w[4..6].reverse();
    w[6..8].reverse();
    w
}

fn put_plp(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    if !data.is_empty() {
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(data);
    }
    buf.extend_from_slice(&0u32.to_le_bytes());
}

fn put_var(buf: &mut Vec<u8>, ty: &TsqlType, data: &[u8], what: &str) -> Result<(), ValueError> {
    if ty.is_plp() {
        put_plp(buf, data);
    } else {
        if data.len() > 8000 {
            return err(format!(
                "{what} value of {} bytes does not fit its type",
                data.len()
            ));
        }
        buf.extend_from_slice(&(data.len() as u16).to_le_bytes());
        buf.extend_from_slice(data);
    }
    Ok(())
}

/// Appends the TDS encoding of `v` as a value of column type `ty` (the ROW token format).
pub fn encode_tds(ty: &TsqlType, v: &Value, buf: &mut Vec<u8>) -> Result<(), ValueError> {
    if matches!(v, Value::Null) {
        if ty.is_plp() {
            buf.extend_from_slice(&u64::MAX.to_le_bytes());
        } else {
            match ty {
                TsqlType::Char(_)
                | TsqlType::VarChar(_)
                | TsqlType::NChar(_)
                | TsqlType::NVarChar(_)
                | TsqlType::Binary(_)
                | TsqlType::VarBinary(_)
                | TsqlType::RowVersion => buf.extend_from_slice(&0xFFFFu16.to_le_bytes()),
                _ => buf.push(0),
            }
        }
        return Ok(());
    }
    match ty {
        TsqlType::Bit => {
            buf.push(1);
            buf.push((as_i64(v)? != 0) as u8);
        }
        TsqlType::TinyInt => {
            let i = as_i64(v)?;
            let b = u8::try_from(i).map_err(|_| {
                ValueError("Arithmetic overflow error for data type tinyint".into())
            })?;
            buf.extend_from_slice(&[1, b]);
        }
        TsqlType::SmallInt => {
            let i = i16::try_from(as_i64(v)?).map_err(|_| {
                ValueError("Arithmetic overflow error for data type smallint".into())
            })?;
            buf.push(2);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        TsqlType::Int => {
            let i = i32::try_from(as_i64(v)?).map_err(|_| {
                ValueError(
                    "Arithmetic overflow error converting expression to data type int.".into(),
                )
            })?;
            buf.push(4);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        TsqlType::BigInt => {
            buf.push(8);
            buf.extend_from_slice(&as_i64(v)?.to_le_bytes());
        }
        TsqlType::Decimal {
            precision, scale, ..
        } => {
            let d = as_dec(v)?.rescale(*scale).ok_or_else(|| {
                ValueError(
                    "Arithmetic overflow error converting numeric to data type numeric.".into(),
                )
            })?;
            if d.mantissa.unsigned_abs() >= 10u128.pow(*precision as u32) {
                return err("Arithmetic overflow error converting numeric to data type numeric.");
            }
            let len = decimal_bytes(*precision);
            buf.push(len);
            buf.push((d.mantissa >= 0) as u8);
            buf.extend_from_slice(&d.mantissa.unsigned_abs().to_le_bytes()[..len as usize - 1]);
        }
        TsqlType::Money | TsqlType::SmallMoney => {
            let d = as_dec(v)?.rescale(4).ok_or_else(|| {
                ValueError(
                    "Arithmetic overflow error converting expression to data type money.".into(),
                )
            })?;
            let m = i64::try_from(d.mantissa).map_err(|_| {
                ValueError(
                    "Arithmetic overflow error converting expression to data type money.".into(),
                )
            })?;
            if *ty == TsqlType::Money {
                buf.push(8);
                buf.extend_from_slice(&((m >> 32) as i32).to_le_bytes());
                buf.extend_from_slice(&(m as u32).to_le_bytes());
            } else {
                let m = i32::try_from(m).map_err(|_| {
                    ValueError(
                        "Arithmetic overflow error converting expression to data type smallmoney."
                            .into(),
                    )
                })?;
                buf.push(4);
                buf.extend_from_slice(&m.to_le_bytes());
            }
        }
        TsqlType::Real => {
            buf.push(4);
            buf.extend_from_slice(&(as_f64(v)? as f32).to_le_bytes());
        }
        TsqlType::Float => {
            buf.push(8);
            buf.extend_from_slice(&as_f64(v)?.to_le_bytes());
        }
        TsqlType::Date => {
            let (d, _, _) = as_datetime(v)?;
            buf.push(3);
            put_days(buf, d);
        }
        TsqlType::Time(s) => {
            let ticks = match v {
                Value::Text(t) => match parse_time_text(t) {
                    Some(t) => t,
                    None => as_datetime(v)?.1,
                },
                _ => as_datetime(v)?.1,
            };
            let (t, _) = round_ticks(ticks, *s);
            buf.push(time_bytes(*s));
            put_time(buf, t, *s);
        }
        TsqlType::DateTime2(s) => {
            let (d, t, _) = as_datetime(v)?;
            let (t, carry) = round_ticks(t, *s);
            buf.push(time_bytes(*s) + 3);
            put_time(buf, t, *s);
            put_days(buf, d + carry as i64);
        }
        TsqlType::DateTimeOffset(s) => {
            let (d, t, o) = as_datetime(v)?;
            let o = o.unwrap_or(0);
            // The wire carries UTC date and time plus the offset.
            let total = (d as i128) * TICKS_PER_DAY as i128 + t as i128 - (o as i128) * 600_000_000;
            let ud = total.div_euclid(TICKS_PER_DAY as i128) as i64;
            let ut = total.rem_euclid(TICKS_PER_DAY as i128) as u64;
            let (ut, carry) = round_ticks(ut, *s);
            buf.push(time_bytes(*s) + 5);
            put_time(buf, ut, *s);
            put_days(buf, ud + carry as i64);
            buf.extend_from_slice(&o.to_le_bytes());
        }
        TsqlType::DateTime => {
            let (d, t, _) = as_datetime(v)?;
            // 1/300 s ticks, rounded; .9983333 and up round into the next day.
            let mut ticks300 = ((t as u128 * 300 + 5_000_000) / 10_000_000) as u64;
            let mut days = d - DATETIME_EPOCH_DAYS;
            if ticks300 >= 300 * 86_400 {
                ticks300 -= 300 * 86_400;
                days += 1;
            }
            buf.push(8);
            buf.extend_from_slice(&(days as i32).to_le_bytes());
            buf.extend_from_slice(&(ticks300 as u32).to_le_bytes());
        }
        TsqlType::SmallDateTime => {
            let (d, t, _) = as_datetime(v)?;
            let mut minutes = (t + 300_000_000) / 600_000_000;
            let mut days = d - DATETIME_EPOCH_DAYS;
            if minutes >= 1440 {
                minutes -= 1440;
                days += 1;
            }
            buf.push(4);
            buf.extend_from_slice(&(days as u16).to_le_bytes());
            buf.extend_from_slice(&(minutes as u16).to_le_bytes());
        }
        TsqlType::Char(_) | TsqlType::VarChar(_) | TsqlType::Text => {
            let bytes = match v {
                Value::Text(s) => stored_to_cp1252(s),
                other => stored_to_cp1252(&as_text(other)),
            };
            put_var(buf, ty, &bytes, "varchar")?;
        }
        TsqlType::NChar(_)
        | TsqlType::NVarChar(_)
        | TsqlType::NText
        | TsqlType::Xml
        | TsqlType::SqlVariant
        | TsqlType::HierarchyId => {
            let mut bytes = Vec::new();
            match v {
                Value::Text(s) => put_utf16_stored(&mut bytes, s),
                other => put_utf16_stored(&mut bytes, &as_text(other)),
            }
            put_var(buf, ty, &bytes, "nvarchar")?;
        }
        TsqlType::Binary(_)
        | TsqlType::VarBinary(_)
        | TsqlType::Image
        | TsqlType::Geography
        | TsqlType::Geometry => match v {
            Value::Bytes(b) => put_var(buf, ty, b, "varbinary")?,
            Value::Text(s) => put_var(buf, ty, s.as_bytes(), "varbinary")?,
            Value::Uuid(u) => put_var(buf, ty, &uuid_to_wire(u), "varbinary")?,
            Value::Int(i) => put_var(buf, ty, &i.to_be_bytes(), "varbinary")?,
            other => return err(format!("cannot convert {other:?} to varbinary")),
        },
        TsqlType::RowVersion => {
            let i = as_i64(v)?;
            buf.extend_from_slice(&8u16.to_le_bytes());
            buf.extend_from_slice(&i.to_be_bytes());
        }
        TsqlType::UniqueIdentifier => {
            let u = match v {
                Value::Uuid(u) => *u,
                Value::Text(s) => *uuid::Uuid::parse_str(s.trim())
                    .map_err(|_| ValueError(format!("Conversion failed when converting from a character string to uniqueidentifier ('{s}').")))?
                    .as_bytes(),
                other => return err(format!("cannot convert {other:?} to uniqueidentifier")),
            };
            buf.push(16);
            buf.extend_from_slice(&uuid_to_wire(&u));
        }
    }
    Ok(())
}

// ---------- fast path: PostgreSQL binary straight to TDS ----------

/// Appends `s` (stored form) as UTF-16LE; ASCII without escapes takes a byte loop.
fn put_utf16_stored(buf: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        buf.reserve(s.len() * 2);
        for b in s.bytes() {
            buf.push(b);
            buf.push(0);
        }
    } else {
        stored_to_utf16le(s, buf);
    }
}

fn digits(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    Some(v)
}

/// Parses the canonical stored form `YYYY-MM-DD HH:MM:SS.fffffff` without allocating.
fn parse_canonical_datetime2(b: &[u8]) -> Option<(i64, u64)> {
    if b.len() != 27
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])? as u32,
        digits(&b[8..10])? as u32,
    )?;
    let (h, m, sec, f) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        digits(&b[20..27])?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some((days_of(date), ((h * 60 + m) * 60 + sec) * 10_000_000 + f))
}

/// Encodes one PostgreSQL binary value as a TDS value of type `ty`, borrowing the raw bytes
/// for the common pairs and falling back to [`decode_pg`] + [`encode_tds`] for the rest.
/// Same output as the general path.
pub fn encode_pg_value(
    ty: &TsqlType,
    pg: &tokio_postgres::types::Type,
    raw: Option<&[u8]>,
    buf: &mut Vec<u8>,
) -> Result<(), ValueError> {
    use tokio_postgres::types::Type;
    let Some(r) = raw else {
        return encode_tds(ty, &Value::Null, buf);
    };
    match (ty, pg) {
        (TsqlType::BigInt, &Type::INT8) if r.len() == 8 => {
            buf.push(8);
            buf.extend(r.iter().rev());
            return Ok(());
        }
        (TsqlType::Int, &Type::INT4) if r.len() == 4 => {
            buf.push(4);
            buf.extend(r.iter().rev());
            return Ok(());
        }
        (TsqlType::SmallInt, &Type::INT2) if r.len() == 2 => {
            buf.push(2);
            buf.extend(r.iter().rev());
            return Ok(());
        }
        (TsqlType::Bit, &Type::INT2) if r.len() == 2 => {
            buf.extend_from_slice(&[1, (r[0] | r[1] != 0) as u8]);
            return Ok(());
        }
        (TsqlType::UniqueIdentifier, &Type::UUID) if r.len() == 16 => {
            buf.push(16);
            let mut u = [0u8; 16];
            u.copy_from_slice(r);
            buf.extend_from_slice(&uuid_to_wire(&u));
            return Ok(());
        }
        (TsqlType::Decimal { .. } | TsqlType::Money | TsqlType::SmallMoney, &Type::NUMERIC) => {
            return encode_tds(ty, &Value::Decimal(decode_pg_numeric(r)?), buf);
        }
        (
            TsqlType::NVarChar(Len::N(_)) | TsqlType::NChar(_),
            &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR,
        ) => {
            let s = std::str::from_utf8(r)
                .map_err(|_| ValueError("invalid UTF-8 from PostgreSQL".into()))?;
            let at = buf.len();
            buf.extend_from_slice(&[0, 0]);
            put_utf16_stored(buf, s);
            let n = buf.len() - at - 2;
            if n > 8000 {
                return err(format!("nvarchar value of {n} bytes does not fit its type"));
            }
            buf[at..at + 2].copy_from_slice(&(n as u16).to_le_bytes());
            return Ok(());
        }
        (TsqlType::DateTime2(scale), &Type::TEXT) => {
            if let Some((d, t)) = parse_canonical_datetime2(r) {
                return encode_tds(ty, &Value::DateTime(d, t), buf).map(|_| {
                    let _ = scale;
                });
            }
        }
        _ => {}
    }
    encode_tds(ty, &decode_pg(pg, raw)?, buf)
}

// ---------- PostgreSQL literals ----------

/// Quotes stored text as a PostgreSQL string literal (standard_conforming_strings on).
pub fn pg_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Renders a value as a PostgreSQL expression. Temporal values render as untyped literals, so
/// PostgreSQL gives them the type of what they meet (text storage or timestamp).
pub fn pg_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => (*b as i32).to_string(),
        Value::Int(i) => {
            if *i < 0 {
                format!("({i})")
            } else if *i > i32::MAX as i64 {
                format!("{i}::bigint")
            } else {
                i.to_string()
            }
        }
        Value::Float(f) => format!("'{f:e}'::float8"),
        Value::Decimal(d) => {
            if d.mantissa < 0 {
                format!("({d})")
            } else {
                d.to_string()
            }
        }
        Value::Text(s) => pg_quote(s),
        Value::Bytes(b) => format!("'\\x{}'::bytea", hex(b)),
        Value::Uuid(u) => format!("'{}'::uuid", uuid::Uuid::from_bytes(*u)),
        Value::Date(_) | Value::Time(_) | Value::DateTime(..) | Value::DateTimeOffset(..) => {
            pg_quote(&as_text(v))
        }
    }
}

/// Converts a value to the stored form of column type `ty` (used for parameters and defaults).
pub fn to_stored_literal(ty: &TsqlType, v: &Value) -> String {
    match (ty, v) {
        (_, Value::Null) => "NULL".into(),
        (TsqlType::DateTime2(_), _) | (TsqlType::DateTimeOffset(_), _) | (TsqlType::Time(_), _) => {
            pg_literal(v)
        }
        _ => pg_literal(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let units = vec![0x61, 0x0000, 0xD800, 0x62, 0xDFFF, 0xDBFF, 0xDC00, 0x63];
        let stored = utf16_to_stored(&units);
        assert!(!stored.contains('\0'));
        assert_eq!(stored_to_utf16(&stored), units);
        let esc: Vec<u16> = ESC.to_string().encode_utf16().collect();
        assert_eq!(stored_to_utf16(&utf16_to_stored(&esc)), esc);
    }

    #[test]
    fn decimal_parse_display_rescale() {
        let d = Dec::parse("-12.3450").unwrap();
        assert_eq!(d.to_string(), "-12.3450");
        assert_eq!(d.rescale(2).unwrap().to_string(), "-12.35");
        assert_eq!(
            Dec::parse("0.00000000000000000000000000000000000001")
                .unwrap()
                .to_string(),
            "0.00000000000000000000000000000000000001"
        );
        let big = "99999999999999999999999999999999999999";
        assert_eq!(Dec::parse(big).unwrap().to_string(), big);
    }

    #[test]
    fn pg_numeric_with_38_fraction_digits() {
        // 0.99999999999999999999999999999999999999: weight -1, ten base-10000 digits, dscale 38.
        let mut raw = vec![0, 10, 0xFF, 0xFF, 0, 0, 0, 38];
        for _ in 0..9 {
            raw.extend_from_slice(&9999u16.to_be_bytes());
        }
        raw.extend_from_slice(&9900u16.to_be_bytes());
        let d = decode_pg_numeric(&raw).unwrap();
        assert_eq!(d.to_string(), format!("0.{}", "9".repeat(38)));
    }

    #[test]
    fn datetime_text_forms() {
        let (d, t, o) = parse_datetime_text("2024-02-29 23:59:59.9999999 +05:30").unwrap();
        assert_eq!(
            format_datetimeoffset(d, t, o.unwrap()),
            "2024-02-29 23:59:59.9999999 +05:30"
        );
        let (d, t, o) = parse_datetime_text("20240101").unwrap();
        assert_eq!(
            (format_datetime2(d, t), o),
            ("2024-01-01 00:00:00.0000000".to_string(), None)
        );
        assert!(parse_datetime_text("2024-13-01").is_none());
        assert_eq!(
            parse_datetime_text("9999-12-31T23:59:59.9999999Z")
                .unwrap()
                .2,
            Some(0)
        );
    }

    #[test]
    fn datetime_rounds_to_three_hundredths() {
        let mut buf = Vec::new();
        let (d, t, _) = parse_datetime_text("2024-01-01 00:00:00.002").unwrap();
        encode_tds(&TsqlType::DateTime, &Value::DateTime(d, t), &mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf[5..9].try_into().unwrap()), 1);
    }

    #[test]
    fn fast_path_matches_general_path() {
        use tokio_postgres::types::Type;
        let cases: Vec<(TsqlType, Type, Vec<u8>)> = vec![
            (TsqlType::BigInt, Type::INT8, (-5i64).to_be_bytes().to_vec()),
            (TsqlType::Int, Type::INT4, 123456i32.to_be_bytes().to_vec()),
            (
                TsqlType::SmallInt,
                Type::INT2,
                (-2i16).to_be_bytes().to_vec(),
            ),
            (TsqlType::Bit, Type::INT2, 1i16.to_be_bytes().to_vec()),
            (TsqlType::UniqueIdentifier, Type::UUID, (0u8..16).collect()),
            (
                TsqlType::NVarChar(Len::N(50)),
                Type::TEXT,
                "héllo \u{10FFFF}0x".as_bytes().to_vec(),
            ),
            (
                TsqlType::NVarChar(Len::N(50)),
                Type::VARCHAR,
                b"plain ascii".to_vec(),
            ),
            (
                TsqlType::DateTime2(7),
                Type::TEXT,
                b"2024-02-29 23:59:59.9999999".to_vec(),
            ),
            (
                TsqlType::DateTime2(3),
                Type::TEXT,
                b"2024-02-29 23:59:59.9996000".to_vec(),
            ),
        ];
        for (ty, pg, raw) in cases {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            encode_pg_value(&ty, &pg, Some(&raw), &mut fast).unwrap();
            encode_tds(&ty, &decode_pg(&pg, Some(&raw)).unwrap(), &mut slow).unwrap();
            assert_eq!(fast, slow, "{ty} from {pg}");
        }
    }
}
