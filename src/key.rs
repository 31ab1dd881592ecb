//! A row's key exactly as SQL Server sent it, and its codec for the target's progress tables.
//! Shared by the source (keyset reads, split points) and the sink (snapshot progress), so
//! neither reaches into the other for it.

use serde::{Deserialize, Serialize};
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::ColumnData;

/// One key column's value exactly as SQL Server sent it (persisted with chunk progress).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyValue {
    /// NULL (a configured key may allow it).
    Null,
    /// tinyint.
    U8(u8),
    /// smallint.
    I16(i16),
    /// int.
    I32(i32),
    /// bigint.
    I64(i64),
    /// real.
    F32(f32),
    /// float.
    F64(f64),
    /// bit.
    Bit(bool),
    /// character data.
    String(String),
    /// binary data (also UTF-16LE national text read as bytes).
    Binary(Vec<u8>),
    /// uniqueidentifier, RFC byte order.
    Guid([u8; 16]),
    /// decimal: value and scale.
    Numeric(i128, u8),
    /// datetime: days since 1900, 1/300 s ticks.
    DateTime(i32, u32),
    /// smalldatetime: days since 1900, minutes.
    SmallDateTime(u16, u16),
    /// date: days since 0001-01-01.
    Date(u32),
    /// time: increments, scale.
    Time(u64, u8),
    /// datetime2: days, increments, scale.
    DateTime2(u32, u64, u8),
    /// datetimeoffset: days, increments, scale (UTC), offset minutes.
    DateTimeOffset(u32, u64, u8, i16),
}

impl KeyValue {
    /// Captures a cell.
    pub fn from_cell(c: &ColumnData<'_>) -> KeyValue {
        use ColumnData as C;
        match c {
            C::U8(Some(v)) => KeyValue::U8(*v),
            C::I16(Some(v)) => KeyValue::I16(*v),
            C::I32(Some(v)) => KeyValue::I32(*v),
            C::I64(Some(v)) => KeyValue::I64(*v),
            C::F32(Some(v)) => KeyValue::F32(*v),
            C::F64(Some(v)) => KeyValue::F64(*v),
            C::Bit(Some(v)) => KeyValue::Bit(*v),
            C::String(Some(v)) => KeyValue::String(v.to_string()),
            C::Binary(Some(v)) => KeyValue::Binary(v.to_vec()),
            C::Guid(Some(v)) => KeyValue::Guid(*v.as_bytes()),
            C::Numeric(Some(n)) => KeyValue::Numeric(n.value(), n.scale()),
            C::DateTime(Some(d)) => KeyValue::DateTime(d.days(), d.seconds_fragments()),
            C::SmallDateTime(Some(d)) => KeyValue::SmallDateTime(d.days(), d.seconds_fragments()),
            C::Date(Some(d)) => KeyValue::Date(d.days()),
            C::Time(Some(t)) => KeyValue::Time(t.increments(), t.scale()),
            C::DateTime2(Some(d)) => {
                KeyValue::DateTime2(d.date().days(), d.time().increments(), d.time().scale())
            }
            C::DateTimeOffset(Some(d)) => {
                let dt = d.datetime2();
                KeyValue::DateTimeOffset(
                    dt.date().days(),
                    dt.time().increments(),
                    dt.time().scale(),
                    d.offset(),
                )
            }
            C::Xml(Some(x)) => KeyValue::String(x.to_string()),
            _ => KeyValue::Null,
        }
    }

    /// The value as a parameter, typed as SQL Server sent it.
    pub fn to_cell(&self) -> ColumnData<'static> {
        use ColumnData as C;
        match self {
            KeyValue::Null => C::I32(None),
            KeyValue::U8(v) => C::U8(Some(*v)),
            KeyValue::I16(v) => C::I16(Some(*v)),
            KeyValue::I32(v) => C::I32(Some(*v)),
            KeyValue::I64(v) => C::I64(Some(*v)),
            KeyValue::F32(v) => C::F32(Some(*v)),
            KeyValue::F64(v) => C::F64(Some(*v)),
            KeyValue::Bit(v) => C::Bit(Some(*v)),
            KeyValue::String(v) => C::String(Some(v.clone().into())),
            KeyValue::Binary(v) => C::Binary(Some(v.clone().into())),
            KeyValue::Guid(v) => C::Guid(Some(uuid::Uuid::from_bytes(*v))),
            KeyValue::Numeric(v, s) => C::Numeric(Some(Numeric::new_with_scale(*v, *s))),
            KeyValue::DateTime(d, f) => C::DateTime(Some(DateTime::new(*d, *f))),
            KeyValue::SmallDateTime(d, m) => C::SmallDateTime(Some(SmallDateTime::new(*d, *m))),
            KeyValue::Date(d) => C::Date(Some(Date::new(*d))),
            KeyValue::Time(i, s) => C::Time(Some(Time::new(*i, *s))),
            KeyValue::DateTime2(d, i, s) => {
                C::DateTime2(Some(DateTime2::new(Date::new(*d), Time::new(*i, *s))))
            }
            KeyValue::DateTimeOffset(d, i, s, o) => C::DateTimeOffset(Some(DateTimeOffset::new(
                DateTime2::new(Date::new(*d), Time::new(*i, *s)),
                *o,
            ))),
        }
    }

    /// A short rendering for messages (keys may be named in errors; row values never are).
    pub fn display(&self) -> String {
        match self {
            KeyValue::String(s) => format!("'{s}'"),
            KeyValue::Binary(b) if b.len() <= 32 => {
                format!(
                    "0x{}",
                    b.iter().map(|x| format!("{x:02X}")).collect::<String>()
                )
            }
            KeyValue::Guid(g) => uuid::Uuid::from_bytes(*g)
                .hyphenated()
                .to_string()
                .to_uppercase(),
            KeyValue::Numeric(v, s) => crate::model::render_decimal(*v, *s),
            KeyValue::I64(v) => v.to_string(),
            KeyValue::I32(v) => v.to_string(),
            KeyValue::I16(v) => v.to_string(),
            KeyValue::U8(v) => v.to_string(),
            KeyValue::Bit(v) => u8::from(*v).to_string(),
            KeyValue::F32(v) => v.to_string(),
            KeyValue::F64(v) => v.to_string(),
            KeyValue::Date(d) => format!("'{}'", date_text(*d as i64)),
            KeyValue::Time(i, s) => format!("'{}'", time_text(*i, *s)),
            KeyValue::DateTime2(d, i, s) => {
                format!("'{} {}'", date_text(*d as i64), time_text(*i, *s))
            }
            KeyValue::DateTime(d, ticks) => {
                // 1/300 s ticks, shown in milliseconds as SQL Server does.
                let ms = (*ticks as u64 * 10 + 1) / 3;
                format!(
                    "'{} {}'",
                    date_text(*d as i64 + DAYS_TO_1900),
                    time_text(ms, 3)
                )
            }
            KeyValue::SmallDateTime(d, m) => format!(
                "'{} {}'",
                date_text(*d as i64 + DAYS_TO_1900),
                time_text(*m as u64 * 60, 0)
            ),
            KeyValue::DateTimeOffset(d, i, s, o) => {
                // Kept in UTC; shown in its own offset.
                let per_day = 86_400 * 10u64.pow(*s as u32) as i128;
                let local =
                    *d as i128 * per_day + *i as i128 + *o as i128 * 60 * 10i128.pow(*s as u32);
                format!(
                    "'{} {} {}{:02}:{:02}'",
                    date_text(local.div_euclid(per_day) as i64),
                    time_text(local.rem_euclid(per_day) as u64, *s),
                    if *o < 0 { '-' } else { '+' },
                    o.unsigned_abs() / 60,
                    o.unsigned_abs() % 60
                )
            }
            KeyValue::Binary(_) | KeyValue::Null => format!("{self:?}"),
        }
    }
}

use crate::convert::value::{DAYS_0001_TO_2000, DAYS_1900_TO_2000};

/// Days from 0001-01-01 to 1900-01-01 (datetime's day 0).
const DAYS_TO_1900: i64 = DAYS_0001_TO_2000 - DAYS_1900_TO_2000;

/// `YYYY-MM-DD` of a day counted from 0001-01-01.
fn date_text(days: i64) -> String {
    i32::try_from(days + 1)
        .ok()
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day {days}"))
}

/// `HH:MM:SS[.f...]` of `increments` at `scale` fraction digits since midnight.
fn time_text(increments: u64, scale: u8) -> String {
    let per_s = 10u64.pow(scale as u32);
    let secs = increments / per_s;
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if scale > 0 {
        out.push_str(&format!(".{:0w$}", increments % per_s, w = scale as usize));
    }
    out
}

/// A key: one [`KeyValue`] per key column.
pub type Key = Vec<KeyValue>;

/// Encodes a key for the progress tables (postcard, version-tagged).
pub fn encode_key(key: &[KeyValue]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend(postcard::to_stdvec(key).unwrap_or_default());
    out
}

/// Decodes [`encode_key`]'s bytes.
pub fn decode_key(bytes: &[u8]) -> Option<Key> {
    match bytes.split_first() {
        Some((1, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::KeyValue as K;

    #[test]
    fn date_and_time_keys_are_shown_as_sql_server_writes_them() {
        let cases = [
            (K::Date(0), "'0001-01-01'"),
            (K::Date(730_119), "'2000-01-01'"),
            (K::Time(432_005_000_000, 7), "'12:00:00.5000000'"),
            (K::Time(45_296_789, 3), "'12:34:56.789'"),
            (
                K::DateTime2(737_456, 73_220_100_000, 7),
                "'2020-02-02 02:02:02.0100000'",
            ),
            (K::DateTime(0, 1), "'1900-01-01 00:00:00.003'"),
            (K::DateTime(-1, 2), "'1899-12-31 00:00:00.007'"),
            (K::DateTime(36_524, 3), "'2000-01-01 00:00:00.010'"),
            (K::SmallDateTime(1, 61), "'1900-01-02 01:01:00'"),
            (
                K::DateTimeOffset(730_119, 0, 0, -90),
                "'1999-12-31 22:30:00 -01:30'",
            ),
            (K::Bit(true), "1"),
        ];
        for (k, want) in cases {
            assert_eq!(k.display(), want, "{k:?}");
        }
    }
}
