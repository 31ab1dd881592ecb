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
            other => format!("{other:?}"),
        }
    }
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
