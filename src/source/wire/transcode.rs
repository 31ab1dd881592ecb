//! The hottest plain cases without even a borrowed value: a column's wire type and target type
//! decide once per chunk ([`plan`]) how its TDS bytes become its binary COPY field ([`write`]).
//!
//! Contract: what [`write`] writes is what [`crate::convert::direct::encode`] (and so `to_value` then
//! `copy::field`) writes for the same value; when it returns false it wrote nothing and the
//! caller takes the general path (NUL characters, lone surrogates, text that may not fit,
//! digits below a microsecond, a value out of the target's range).

use super::meta::{ByteLenType as B, Chars, FixedType as F, WireType};
use crate::convert::value::{DAYS_0001_TO_2000, US_PER_DAY};
use crate::convert::{ColumnPlan, TargetKind as K};
use bytes::{BufMut, BytesMut};

/// How one column's bytes become its COPY field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transcode {
    /// A little-endian integer (signed unless tinyint) into a big-endian one of `to` bytes.
    Int {
        /// Signed on the wire.
        signed: bool,
        /// The target's width in bytes (2, 4 or 8).
        to: u8,
    },
    /// bit into boolean.
    Bool,
    /// real into real, float into double precision (the value's width must be the target's).
    Float {
        /// 4 or 8.
        width: u8,
    },
    /// uniqueidentifier (mixed-endian on the wire) into uuid.
    Uuid,
    /// UTF-16LE into text, or into varchar(n) when it has at most n code units.
    Utf16 {
        /// varchar's n.
        max_units: Option<u32>,
    },
    /// date into date.
    Date,
    /// datetime2(scale) into timestamp or timestamptz.
    DateTime2 {
        /// Its scale.
        scale: u8,
    },
}

/// The transcoder for a column, when its wire type and target type have one.
pub fn plan(ty: WireType, col: &ColumnPlan) -> Option<Transcode> {
    let int_to = |kind: K| match kind {
        K::Int2 => Some(2),
        K::Int4 => Some(4),
        K::Int8 => Some(8),
        _ => None,
    };
    Some(match (ty, col.kind) {
        (WireType::Fixed(F::Int1, _), k) => Transcode::Int {
            signed: false,
            to: int_to(k)?,
        },
        (WireType::Fixed(F::Int2 | F::Int4 | F::Int8, _) | WireType::ByteLen(B::Int), k) => {
            Transcode::Int {
                signed: true,
                to: int_to(k)?,
            }
        }
        (WireType::Fixed(F::Bit, _) | WireType::ByteLen(B::Bit), K::Bool) => Transcode::Bool,
        (WireType::Fixed(F::Float4 | F::Float8, _) | WireType::ByteLen(B::Float), K::Float4) => {
            Transcode::Float { width: 4 }
        }
        (WireType::Fixed(F::Float4 | F::Float8, _) | WireType::ByteLen(B::Float), K::Float8) => {
            Transcode::Float { width: 8 }
        }
        (WireType::ByteLen(B::Guid), K::Uuid) => Transcode::Uuid,
        // A sql_variant's `base:text` is taken apart by the general path.
        (WireType::UShortLen(Chars::Utf16) | WireType::Plp(Chars::Utf16), _) if col.variant => {
            return None
        }
        (WireType::UShortLen(Chars::Utf16) | WireType::Plp(Chars::Utf16), K::Text) => {
            Transcode::Utf16 { max_units: None }
        }
        (WireType::UShortLen(Chars::Utf16) | WireType::Plp(Chars::Utf16), K::Varchar(n)) => {
            Transcode::Utf16 { max_units: Some(n) }
        }
        (WireType::ByteLen(B::Date), K::Date) => Transcode::Date,
        (WireType::ByteLen(B::DateTime2(scale)), K::Timestamp | K::TimestampTz) => {
            Transcode::DateTime2 { scale }
        }
        _ => return None,
    })
}

fn le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Writes the field for the value's bytes `b` (without length prefix); false: nothing written,
/// take the general path.
#[inline]
pub fn write(t: Transcode, b: &[u8], buf: &mut BytesMut) -> bool {
    match t {
        Transcode::Int { signed, to } => {
            let n = b.len();
            if !matches!(n, 1 | 2 | 4 | 8) {
                return false;
            }
            let raw = le(b);
            // One byte is tinyint, unsigned whatever the type token.
            let v: i64 = if signed && (2..8).contains(&n) {
                let shift = 64 - 8 * n as u32;
                ((raw << shift) as i64) >> shift
            } else {
                raw as i64
            };
            match to {
                8 => {
                    buf.put_i32(8);
                    buf.put_i64(v);
                }
                4 if i32::try_from(v).is_ok() => {
                    buf.put_i32(4);
                    buf.put_i32(v as i32);
                }
                2 if i16::try_from(v).is_ok() => {
                    buf.put_i32(2);
                    buf.put_i16(v as i16);
                }
                _ => return false,
            }
        }
        Transcode::Bool => {
            if b.len() != 1 {
                return false;
            }
            buf.put_i32(1);
            buf.put_u8((b[0] != 0) as u8);
        }
        // A value of the other width (real into float, float into real) goes the general way.
        Transcode::Float { width } => match (b.len(), width) {
            (4, 4) => {
                buf.put_i32(4);
                buf.put_u32(le(b) as u32);
            }
            (8, 8) => {
                buf.put_i32(8);
                buf.put_u64(le(b));
            }
            _ => return false,
        },
        Transcode::Uuid => {
            if b.len() != 16 {
                return false;
            }
            buf.put_i32(16);
            buf.put_slice(&[b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]]);
            buf.put_slice(&b[8..]);
        }
        Transcode::Utf16 { max_units } => return utf16(b, max_units, buf),
        Transcode::Date => {
            if b.len() != 3 {
                return false;
            }
            buf.put_i32(4);
            buf.put_i32((le(b) as i64 - DAYS_0001_TO_2000) as i32);
        }
        Transcode::DateTime2 { scale } => {
            let n = b.len();
            if !(6..=8).contains(&n) {
                return false;
            }
            let increments = le(&b[..n - 3]);
            let us = if scale <= 6 {
                increments as i64 * 10i64.pow(6 - scale as u32)
            } else {
                let div = 10u64.pow(scale as u32 - 6);
                if !increments.is_multiple_of(div) {
                    return false;
                }
                (increments / div) as i64
            };
            let days = le(&b[n - 3..]) as i64 - DAYS_0001_TO_2000;
            buf.put_i32(8);
            buf.put_i64(days * US_PER_DAY + us);
        }
    }
    true
}

/// UTF-16LE into a text field, UTF-8 written in place; not for NUL, lone surrogates, or more
/// code units than varchar's n.
fn utf16(b: &[u8], max_units: Option<u32>, buf: &mut BytesMut) -> bool {
    if !b.len().is_multiple_of(2) || max_units.is_some_and(|n| b.len() / 2 > n as usize) {
        return false;
    }
    let start = buf.len();
    buf.put_i32(0);
    let mut units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .peekable();
    while let Some(u) = units.next() {
        match u {
            0 => {
                buf.truncate(start);
                return false;
            }
            1..=0x7F => buf.put_u8(u as u8),
            0x80..=0x7FF => {
                buf.put_u8(0xC0 | (u >> 6) as u8);
                buf.put_u8(0x80 | (u & 0x3F) as u8);
            }
            0xD800..=0xDBFF => match units.peek() {
                Some(&lo @ 0xDC00..=0xDFFF) => {
                    units.next();
                    let c = 0x10000 + (((u as u32) - 0xD800) << 10) + (lo as u32 - 0xDC00);
                    buf.put_u8(0xF0 | (c >> 18) as u8);
                    buf.put_u8(0x80 | ((c >> 12) & 0x3F) as u8);
                    buf.put_u8(0x80 | ((c >> 6) & 0x3F) as u8);
                    buf.put_u8(0x80 | (c & 0x3F) as u8);
                }
                _ => {
                    buf.truncate(start);
                    return false;
                }
            },
            0xDC00..=0xDFFF => {
                buf.truncate(start);
                return false;
            }
            _ => {
                buf.put_u8(0xE0 | (u >> 12) as u8);
                buf.put_u8(0x80 | ((u >> 6) & 0x3F) as u8);
                buf.put_u8(0x80 | (u & 0x3F) as u8);
            }
        }
    }
    let len = (buf.len() - start - 4) as i32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    true
}

#[cfg(test)]
mod tests;
