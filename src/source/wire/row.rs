//! ROW and NBCROW tokens: where each value lies ([`scan`]), and one value as tiberius's own
//! [`ColumnData`] borrowed from the packet bytes or a reused scratch buffer ([`cell`]).
//!
//! Contract: [`cell`] gives the value tiberius would have decoded from the same bytes (the
//! differential tests hold this), except that national text with lone surrogates is decoded
//! with U+FFFD and reported as lossy, as the snapshot's re-read of such text always did.

use super::meta::{ByteLenType, Chars, Cur, FixedType, Stop, WireColumn, WireType};
use super::WireError;
use std::borrow::Cow;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::ColumnData;

/// Where one value lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// NULL.
    Null,
    /// The value's bytes (without their length prefix).
    Bytes(usize, usize),
    /// PLP chunks (each a u32 length and its bytes, the terminator excluded).
    Chunks(usize, usize),
}

/// Finds every value of the row starting at `c.at` (after the token byte); `spans` gets one
/// entry per column. Running out of bytes is [`Stop::More`].
pub fn scan(
    c: &mut Cur<'_>,
    cols: &[WireColumn],
    nbc: bool,
    spans: &mut Vec<Span>,
) -> Result<(), Stop> {
    spans.clear();
    let bitmap = if nbc {
        Some(c.take(cols.len().div_ceil(8))?)
    } else {
        None
    };
    for (i, col) in cols.iter().enumerate() {
        if bitmap.is_some_and(|b| b[i / 8] & (1 << (i % 8)) != 0) {
            spans.push(Span::Null);
            continue;
        }
        let span = match col.ty {
            WireType::Fixed(FixedType::Null, _) => Span::Null,
            WireType::Fixed(_, n) => bytes(c, n as usize)?,
            WireType::ByteLen(_) => match c.u8()? {
                0 => Span::Null,
                n => bytes(c, n as usize)?,
            },
            WireType::UShortLen(_) => match c.u16()? {
                0xFFFF => Span::Null,
                n => bytes(c, n as usize)?,
            },
            WireType::Plp(_) => match c.u64()? {
                u64::MAX => Span::Null,
                _ => {
                    let start = c.at;
                    loop {
                        let n = c.u32()? as usize;
                        if n == 0 {
                            break;
                        }
                        c.take(n)?;
                    }
                    // The terminator's 4 bytes are not part of the value.
                    Span::Chunks(start, c.at - 4)
                }
            },
            WireType::Long(_) => match c.u8()? {
                0 => Span::Null,
                ptr => {
                    c.take(ptr as usize + 8)?;
                    let n = c.u32()?;
                    bytes(c, n as usize)?
                }
            },
        };
        spans.push(span);
    }
    Ok(())
}

fn bytes(c: &mut Cur<'_>, n: usize) -> Result<Span, Stop> {
    let start = c.at;
    c.take(n)?;
    Ok(Span::Bytes(start, c.at))
}

/// Reused buffers for values that cannot be borrowed from the packet bytes.
#[derive(Debug, Default)]
pub struct Scratch {
    /// PLP chunks joined.
    pub joined: Vec<u8>,
    /// Decoded text.
    pub text: String,
}

/// A value's bytes: borrowed when contiguous, joined into `joined` when chunked.
fn value_bytes<'s>(buf: &'s [u8], span: Span, joined: &'s mut Vec<u8>) -> &'s [u8] {
    match span {
        Span::Null => &[],
        Span::Bytes(s, e) => &buf[s..e],
        Span::Chunks(s, e) if s == e => &[],
        Span::Chunks(s, e) => {
            // One chunk (the usual case for small values) is borrowed as it is.
            let first = u32::from_le_bytes([buf[s], buf[s + 1], buf[s + 2], buf[s + 3]]) as usize;
            if s + 4 + first == e {
                return &buf[s + 4..e];
            }
            joined.clear();
            let mut at = s;
            while at < e {
                let n =
                    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                joined.extend_from_slice(&buf[at + 4..at + 4 + n]);
                at += 4 + n;
            }
            joined
        }
    }
}

fn le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(a)
}

fn bad(col: &WireColumn, what: &str) -> WireError {
    WireError::Malformed(format!("column {}: {what}", col.name))
}

fn null_of(ty: WireType) -> ColumnData<'static> {
    use ByteLenType as B;
    match ty {
        WireType::Fixed(f, _) => match f {
            FixedType::Bit => ColumnData::Bit(None),
            FixedType::Int1 => ColumnData::U8(None),
            FixedType::Int2 => ColumnData::I16(None),
            FixedType::Int8 => ColumnData::I64(None),
            FixedType::Float4 => ColumnData::F32(None),
            FixedType::Float8 | FixedType::Money | FixedType::Money4 => ColumnData::F64(None),
            FixedType::DateTime => ColumnData::DateTime(None),
            FixedType::DateTime4 => ColumnData::SmallDateTime(None),
            FixedType::Null | FixedType::Int4 => ColumnData::I32(None),
        },
        WireType::ByteLen(b) => match b {
            B::Int => ColumnData::I32(None),
            B::Bit => ColumnData::Bit(None),
            B::Float | B::Money => ColumnData::F64(None),
            B::DateTime => ColumnData::DateTime(None),
            B::Guid => ColumnData::Guid(None),
            B::Decimal(_) => ColumnData::Numeric(None),
            B::Date => ColumnData::Date(None),
            B::Time(_) => ColumnData::Time(None),
            B::DateTime2(_) => ColumnData::DateTime2(None),
            B::DateTimeOffset(_) => ColumnData::DateTimeOffset(None),
        },
        WireType::UShortLen(Chars::Binary)
        | WireType::Plp(Chars::Binary)
        | WireType::Long(Chars::Binary) => ColumnData::Binary(None),
        _ => ColumnData::String(None),
    }
}

/// Money's value as tiberius gives it (a float of the scaled integer).
fn money(b: &[u8]) -> f64 {
    if b.len() == 4 {
        i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 / 1e4
    } else {
        let high = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
        let low = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as f64;
        ((high << 32) as f64 + low) / 1e4
    }
}

fn fixed_cell(f: FixedType, b: &[u8]) -> ColumnData<'static> {
    match f {
        FixedType::Null => ColumnData::I32(None),
        FixedType::Int1 => ColumnData::U8(Some(b[0])),
        FixedType::Bit => ColumnData::Bit(Some(b[0] != 0)),
        FixedType::Int2 => ColumnData::I16(Some(le(b) as u16 as i16)),
        FixedType::Int4 => ColumnData::I32(Some(le(b) as u32 as i32)),
        FixedType::Int8 => ColumnData::I64(Some(le(b) as i64)),
        FixedType::Float4 => ColumnData::F32(Some(f32::from_bits(le(b) as u32))),
        FixedType::Float8 => ColumnData::F64(Some(f64::from_bits(le(b)))),
        FixedType::Money | FixedType::Money4 => ColumnData::F64(Some(money(b))),
        FixedType::DateTime => ColumnData::DateTime(Some(DateTime::new(
            le(&b[..4]) as u32 as i32,
            le(&b[4..]) as u32,
        ))),
        FixedType::DateTime4 => ColumnData::SmallDateTime(Some(SmallDateTime::new(
            le(&b[..2]) as u16,
            le(&b[2..]) as u16,
        ))),
    }
}

fn byte_len_cell(
    t: ByteLenType,
    b: &[u8],
    col: &WireColumn,
) -> Result<ColumnData<'static>, WireError> {
    use ByteLenType as B;
    let n = b.len();
    Ok(match t {
        B::Int => match n {
            1 => ColumnData::U8(Some(b[0])),
            2 => ColumnData::I16(Some(le(b) as u16 as i16)),
            4 => ColumnData::I32(Some(le(b) as u32 as i32)),
            8 => ColumnData::I64(Some(le(b) as i64)),
            _ => return Err(bad(col, "integer of an invalid length")),
        },
        B::Bit if n == 1 => ColumnData::Bit(Some(b[0] != 0)),
        B::Float if n == 4 => ColumnData::F32(Some(f32::from_bits(le(b) as u32))),
        B::Float if n == 8 => ColumnData::F64(Some(f64::from_bits(le(b)))),
        B::Money if n == 4 || n == 8 => ColumnData::F64(Some(money(b))),
        B::DateTime if n == 8 => fixed_cell(FixedType::DateTime, b),
        B::DateTime if n == 4 => fixed_cell(FixedType::DateTime4, b),
        B::Guid if n == 16 => {
            let mut g = [0u8; 16];
            g.copy_from_slice(b);
            g[0..4].reverse();
            g[4..6].reverse();
            g[6..8].reverse();
            ColumnData::Guid(Some(uuid::Uuid::from_bytes(g)))
        }
        B::Decimal(scale) if matches!(n, 5 | 9 | 13 | 17) => {
            let sign = match b[0] {
                0 => -1i128,
                1 => 1,
                _ => return Err(bad(col, "decimal with an invalid sign")),
            };
            let mut a = [0u8; 16];
            a[..n - 1].copy_from_slice(&b[1..]);
            let magnitude = u128::from_le_bytes(a);
            let v = i128::try_from(magnitude).map_err(|_| bad(col, "decimal out of range"))?;
            ColumnData::Numeric(Some(tiberius::numeric::Numeric::new_with_scale(
                sign * v,
                scale,
            )))
        }
        B::Date if n == 3 => ColumnData::Date(Some(Date::new(le(b) as u32))),
        B::Time(scale) if (3..=5).contains(&n) => ColumnData::Time(Some(Time::new(le(b), scale))),
        B::DateTime2(scale) if (6..=8).contains(&n) => ColumnData::DateTime2(Some(DateTime2::new(
            Date::new(le(&b[n - 3..]) as u32),
            Time::new(le(&b[..n - 3]), scale),
        ))),
        B::DateTimeOffset(scale) if (8..=10).contains(&n) => {
            let dt = DateTime2::new(
                Date::new(le(&b[n - 5..n - 2]) as u32),
                Time::new(le(&b[..n - 5]), scale),
            );
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(dt, le(&b[n - 2..]) as u16 as i16)))
        }
        _ => return Err(bad(col, "value of an invalid length")),
    })
}

/// UTF-16LE into `out`; lone surrogates become U+FFFD when `lossy_ok`, else an error.
/// Returns whether any was replaced.
fn utf16(b: &[u8], out: &mut String, lossy_ok: bool, col: &WireColumn) -> Result<bool, WireError> {
    if !b.len().is_multiple_of(2) {
        return Err(bad(col, "UTF-16 text of an odd length"));
    }
    // ASCII, most text: every high byte zero, every low byte below 0x80.
    if b.chunks_exact(2).all(|c| c[1] == 0 && c[0] < 0x80) {
        let mut v = std::mem::take(out).into_bytes();
        v.clear();
        v.extend(b.iter().step_by(2));
        *out = String::from_utf8(v).map_err(|_| bad(col, "invalid text"))?;
        return Ok(false);
    }
    out.clear();
    out.reserve(b.len() / 2);
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut lossy = false;
    for r in char::decode_utf16(units) {
        match r {
            Ok(ch) => out.push(ch),
            Err(_) if lossy_ok => {
                out.push(char::REPLACEMENT_CHARACTER);
                lossy = true;
            }
            Err(_) => {
                return Err(WireError::Value(
                    "xml that is not valid UTF-16 (SQL Server should never send it)".into(),
                ))
            }
        }
    }
    Ok(lossy)
}

/// The value of column `col` at `span` of `buf`. The flag says lone surrogates were replaced.
pub fn cell<'s>(
    buf: &'s [u8],
    col: &WireColumn,
    span: Span,
    scratch: &'s mut Scratch,
) -> Result<(ColumnData<'s>, bool), WireError> {
    if span == Span::Null {
        return Ok((null_of(col.ty), false));
    }
    let chars = match col.ty {
        WireType::Fixed(f, _) => {
            let b = value_bytes(buf, span, &mut scratch.joined);
            return Ok((fixed_cell(f, b), false));
        }
        WireType::ByteLen(t) => {
            let b = value_bytes(buf, span, &mut scratch.joined);
            return Ok((byte_len_cell(t, b, col)?, false));
        }
        WireType::UShortLen(c) | WireType::Plp(c) | WireType::Long(c) => c,
    };
    let Scratch { joined, text } = scratch;
    let b = value_bytes(buf, span, joined);
    Ok(match chars {
        Chars::Binary => (ColumnData::Binary(Some(Cow::Borrowed(b))), false),
        Chars::CodePage(collation) => {
            if b.is_ascii() {
                // ASCII is the same in every code page SQL Server has.
                let s = std::str::from_utf8(b).map_err(|_| bad(col, "invalid text"))?;
                (ColumnData::String(Some(Cow::Borrowed(s))), false)
            } else {
                let enc = collation.encoding().map_err(|e| {
                    WireError::Value(format!(
                        "text in a collation without a known code page ({e})"
                    ))
                })?;
                // Decoded into the reused scratch string: no allocation once it has grown.
                let invalid = || {
                    WireError::Value(format!(
                        "bytes that are not valid {} text (the column's code page)",
                        enc.name()
                    ))
                };
                let mut decoder = enc.new_decoder_without_bom_handling();
                let room = decoder
                    .max_utf8_buffer_length_without_replacement(b.len())
                    .ok_or_else(invalid)?;
                text.clear();
                text.reserve(room);
                let (result, _) = decoder.decode_to_string_without_replacement(b, text, true);
                if result != encoding_rs::DecoderResult::InputEmpty {
                    return Err(invalid());
                }
                (
                    ColumnData::String(Some(Cow::Borrowed(text.as_str()))),
                    false,
                )
            }
        }
        Chars::Utf16 => {
            let lossy = utf16(b, text, true, col)?;
            (
                ColumnData::String(Some(Cow::Borrowed(text.as_str()))),
                lossy,
            )
        }
        Chars::Xml => {
            utf16(b, text, false, col)?;
            (
                ColumnData::String(Some(Cow::Borrowed(text.as_str()))),
                false,
            )
        }
    })
}
