//! The plain cases of [`super::value::to_value`] written straight into a binary COPY field, with
//! no [`crate::model::Value`] and no allocation: an integer into an integer column at least as
//! wide, text without NUL that fits, bytes, a uuid, a decimal already at the column's scale, a
//! temporal value without digits below a microsecond.
//!
//! Contract: when [`encode`] returns true it wrote exactly the bytes `to_value` then
//! [`crate::convert::copy::field`] would have written (the differential tests hold this); when it
//! returns false it wrote nothing, and the caller takes the general path, which applies the
//! policies, counts the losses and names the errors.

use super::copy;
use super::value::{DAYS_0001_TO_2000, DAYS_1900_TO_2000, US_PER_DAY};
use super::{ColumnPlan, TargetKind as K};
use bytes::{BufMut, BytesMut};
use tiberius::ColumnData as C;

/// Writes `cell` as column `col`'s COPY field when it is a plain case; see the module's contract.
#[inline]
pub fn encode(cell: &C<'_>, col: &ColumnPlan, buf: &mut BytesMut) -> bool {
    match cell {
        C::U8(Some(v)) => int(*v as i64, col.kind, buf),
        C::I16(Some(v)) => int(*v as i64, col.kind, buf),
        C::I32(Some(v)) => int(*v as i64, col.kind, buf),
        C::I64(Some(v)) => int(*v, col.kind, buf),
        C::Bit(Some(b)) if col.kind == K::Bool => {
            buf.put_i32(1);
            buf.put_u8(*b as u8);
            true
        }
        C::F32(Some(v)) if col.kind == K::Float4 => {
            buf.put_i32(4);
            buf.put_f32(*v);
            true
        }
        C::F64(Some(v)) if col.kind == K::Float8 => {
            buf.put_i32(8);
            buf.put_f64(*v);
            true
        }
        C::String(Some(s)) if !col.variant => text(s.as_bytes(), col.kind, buf),
        C::Binary(Some(b)) if col.kind == K::Bytea && col.utf16_expr.is_none() && !col.spatial => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
            true
        }
        C::Guid(Some(u)) if col.kind == K::Uuid => {
            buf.put_i32(16);
            buf.put_slice(u.as_bytes());
            true
        }
        C::Numeric(Some(n)) => match col.kind {
            K::Numeric(Some((p, s))) if n.scale() == s && fits(n.value(), p) => {
                copy::numeric(buf, n.value(), s);
                true
            }
            K::Numeric(None) => {
                copy::numeric(buf, n.value(), n.scale());
                true
            }
            _ => false,
        },
        C::DateTime(Some(dt)) => {
            let days = dt.days() as i64 - DAYS_1900_TO_2000;
            let us = (dt.seconds_fragments() as i64 * 20_000 + 3) / 6;
            timestamp(days * US_PER_DAY + us, col.kind, buf)
        }
        C::SmallDateTime(Some(dt)) => {
            let days = dt.days() as i64 - DAYS_1900_TO_2000;
            timestamp(
                days * US_PER_DAY + dt.seconds_fragments() as i64 * 60_000_000,
                col.kind,
                buf,
            )
        }
        C::Date(Some(d)) if col.kind == K::Date => {
            buf.put_i32(4);
            buf.put_i32((d.days() as i64 - DAYS_0001_TO_2000) as i32);
            true
        }
        C::Time(Some(t)) if col.kind == K::Time => match micros(t.increments(), t.scale()) {
            Some(us) => {
                buf.put_i32(8);
                buf.put_i64(us);
                true
            }
            None => false,
        },
        C::DateTime2(Some(dt)) => {
            let days = dt.date().days() as i64 - DAYS_0001_TO_2000;
            match micros(dt.time().increments(), dt.time().scale()) {
                Some(us) => timestamp(days * US_PER_DAY + us, col.kind, buf),
                None => false,
            }
        }
        C::DateTimeOffset(Some(dto)) if col.kind == K::TimestampTz => {
            let dt = dto.datetime2();
            let days = dt.date().days() as i64 - DAYS_0001_TO_2000;
            match micros(dt.time().increments(), dt.time().scale()) {
                Some(us) => {
                    buf.put_i32(8);
                    buf.put_i64(days * US_PER_DAY + us);
                    true
                }
                None => false,
            }
        }
        // NULL: the general path checks NOT NULL; a nullable column's NULL is written here.
        C::U8(None)
        | C::I16(None)
        | C::I32(None)
        | C::I64(None)
        | C::F32(None)
        | C::F64(None)
        | C::Bit(None)
        | C::String(None)
        | C::Guid(None)
        | C::Binary(None)
        | C::Numeric(None)
        | C::Xml(None)
        | C::DateTime(None)
        | C::SmallDateTime(None)
        | C::Time(None)
        | C::Date(None)
        | C::DateTime2(None)
        | C::DateTimeOffset(None)
            if !col.not_null =>
        {
            buf.put_i32(-1);
            true
        }
        _ => false,
    }
}

fn int(v: i64, kind: K, buf: &mut BytesMut) -> bool {
    match kind {
        K::Int8 => {
            buf.put_i32(8);
            buf.put_i64(v);
        }
        K::Int4 if i32::try_from(v).is_ok() => {
            buf.put_i32(4);
            buf.put_i32(v as i32);
        }
        K::Int2 if i16::try_from(v).is_ok() => {
            buf.put_i32(2);
            buf.put_i16(v as i16);
        }
        _ => return false,
    }
    true
}

/// Text without NUL into text, xml, or a varchar it fits by bytes (bytes bound characters).
fn text(s: &[u8], kind: K, buf: &mut BytesMut) -> bool {
    let fits = match kind {
        // xml goes through `to_value`, which checks it is well-formed.
        K::Text => true,
        K::Varchar(n) => s.len() <= n as usize,
        _ => false,
    };
    if !fits || s.contains(&0) {
        return false;
    }
    buf.put_i32(s.len() as i32);
    buf.put_slice(s);
    true
}

fn timestamp(us_since_2000: i64, kind: K, buf: &mut BytesMut) -> bool {
    if !matches!(kind, K::Timestamp | K::TimestampTz) {
        return false;
    }
    buf.put_i32(8);
    buf.put_i64(us_since_2000);
    true
}

/// Increments of 10^-scale s as microseconds, when no digit below a microsecond is set.
fn micros(increments: u64, scale: u8) -> Option<i64> {
    if scale <= 6 {
        Some(increments as i64 * 10i64.pow(6 - scale as u32))
    } else {
        let div = 10u64.pow(scale as u32 - 6);
        increments
            .is_multiple_of(div)
            .then_some((increments / div) as i64)
    }
}

/// Whether `v` has at most `precision` digits.
fn fits(v: i128, precision: u8) -> bool {
    precision >= 39 || v.unsigned_abs() < 10u128.pow(precision as u32)
}
