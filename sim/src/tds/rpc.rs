//! Requests: SQL batches and RPC calls with typed parameters (MS-TDS 2.2.6.6 and 2.2.6.7).

use super::invalid;
use crate::types::{Len, TsqlType};
use crate::value::{cp1252_to_stored, utf16le_bytes_to_stored, Dec, Value, TICKS_PER_DAY};

/// A cursor over a request payload; every read is bounds-checked.
pub struct Reader<'a> {
    d: &'a [u8],
    pos: usize,
}

type R<T> = std::io::Result<T>;

impl<'a> Reader<'a> {
    /// Starts at the beginning of `d`.
    pub fn new(d: &'a [u8]) -> Self {
        Reader { d, pos: 0 }
    }
    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.d[self.pos.min(self.d.len())..]
    }
    /// Whether all bytes were read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.d.len()
    }
    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        let s = self
            .d
            .get(self.pos..self.pos + n)
            .ok_or_else(|| invalid("truncated request".into()))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| invalid("bad u64".into()))?,
        ))
    }
    fn b_varchar(&mut self) -> R<String> {
        let n = self.u8()? as usize;
        Ok(crate::tds::login::utf16le(self.bytes(n * 2)?))
    }
}

/// Skips the ALL_HEADERS block that starts TDS 7.2+ batch and RPC requests.
pub fn skip_all_headers(r: &mut Reader<'_>) -> R<()> {
    let save = r.pos;
    let total = r.u32()? as usize;
    if total < 4 || save + total > r.d.len() {
        // Pre-7.2 clients send no headers.
        r.pos = save;
        return Ok(());
    }
    r.pos = save + total;
    Ok(())
}

/// The text of a SQL batch request, in stored form (NULs and lone surrogates escaped).
pub fn parse_sql_batch(data: &[u8]) -> R<String> {
    let mut r = Reader::new(data);
    skip_all_headers(&mut r)?;
    Ok(utf16le_bytes_to_stored(&data[r.pos..]))
}

/// One RPC parameter.
#[derive(Debug, Clone)]
pub struct RpcParam {
    /// Its name with the `@` (may be empty for positional parameters).
    pub name: String,
    /// Declared type from TYPE_INFO.
    pub ty: TsqlType,
    /// The value.
    pub value: Value,
    /// Passed by reference (an OUTPUT parameter).
    pub output: bool,
}

/// An RPC request.
#[derive(Debug)]
pub struct RpcRequest {
    /// Procedure name, or the well-known name of a procedure id (10 = sp_executesql).
    pub proc_name: String,
    /// Parameters in order.
    pub params: Vec<RpcParam>,
}

/// Names of the procedure ids of MS-TDS 2.2.6.6.
fn proc_id_name(id: u16) -> String {
    match id {
        1 => "sp_cursor",
        2 => "sp_cursoropen",
        3 => "sp_cursorprepare",
        4 => "sp_cursorexecute",
        5 => "sp_cursorprepexec",
        6 => "sp_cursorunprepare",
        7 => "sp_cursorfetch",
        8 => "sp_cursoroption",
        9 => "sp_cursorclose",
        10 => "sp_executesql",
        11 => "sp_prepare",
        12 => "sp_execute",
        13 => "sp_prepexec",
        14 => "sp_prepexecrpc",
        15 => "sp_unprepare",
        _ => "unknown",
    }
    .to_string()
}

/// Parses an RPC request (one call; batched calls separated by 0xFF/0x80 are not supported).
pub fn parse_rpc(data: &[u8]) -> R<RpcRequest> {
    let mut r = Reader::new(data);
    skip_all_headers(&mut r)?;
    let n = r.u16()?;
    let proc_name = if n == 0xFFFF {
        proc_id_name(r.u16()?)
    } else {
        crate::tds::login::utf16le(r.bytes(n as usize * 2)?)
    };
    let _flags = r.u16()?;
    let mut params = Vec::new();
    while !r.at_end() {
        if matches!(r.d[r.pos], 0xFF | 0x80 | 0xFE) {
            return Err(invalid("batched RPC calls are not supported".into()));
        }
        let name = r.b_varchar()?;
        let status = r.u8()?;
        let (ty, value) = read_typed_value(&mut r)?;
        params.push(RpcParam {
            name,
            ty,
            value,
            output: status & 0x01 != 0,
        });
    }
    Ok(RpcRequest { proc_name, params })
}

fn read_plp(r: &mut Reader<'_>) -> R<Option<Vec<u8>>> {
    let total = r.u64()?;
    if total == u64::MAX {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let n = r.u32()? as usize;
        if n == 0 {
            break;
        }
        out.extend_from_slice(r.bytes(n)?);
    }
    Ok(Some(out))
}

fn le_uint(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, x) in b.iter().enumerate() {
        v |= (*x as u64) << (8 * i);
    }
    v
}

fn read_time(b: &[u8], scale: u8) -> u64 {
    le_uint(b) * 10u64.pow(7 - scale as u32)
}

/// Reads a TYPE_INFO and the value that follows it.
pub fn read_typed_value(r: &mut Reader<'_>) -> R<(TsqlType, Value)> {
    let t = r.u8()?;
    let fixed = |r: &mut Reader<'_>, ty: TsqlType, n: usize| -> R<(TsqlType, Value)> {
        let b = r.bytes(n)?;
        Ok((ty.clone(), int_like(&ty, b)))
    };
    match t {
        0x1F => Ok((TsqlType::Int, Value::Null)),
        0x30 => fixed(r, TsqlType::TinyInt, 1),
        0x32 => fixed(r, TsqlType::Bit, 1),
        0x34 => fixed(r, TsqlType::SmallInt, 2),
        0x38 => fixed(r, TsqlType::Int, 4),
        0x7F => fixed(r, TsqlType::BigInt, 8),
        0x3B => {
            let b = r.bytes(4)?;
            Ok((
                TsqlType::Real,
                Value::Float(f32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64),
            ))
        }
        0x3E => {
            let b = r.bytes(8)?;
            Ok((
                TsqlType::Float,
                Value::Float(f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
            ))
        }
        0x3C => {
            let b = r.bytes(8)?;
            Ok((TsqlType::Money, money(b)))
        }
        0x7A => {
            let b = r.bytes(4)?;
            Ok((TsqlType::SmallMoney, money(b)))
        }
        0x3D => {
            let b = r.bytes(8)?;
            Ok((TsqlType::DateTime, datetime(b)))
        }
        0x3A => {
            let b = r.bytes(4)?;
            Ok((TsqlType::SmallDateTime, datetime(b)))
        }
        0x26 | 0x68 | 0x6D | 0x6E | 0x6F => {
            let max = r.u8()?;
            let ty = match (t, max) {
                (0x26, 1) => TsqlType::TinyInt,
                (0x26, 2) => TsqlType::SmallInt,
                (0x26, 4) => TsqlType::Int,
                (0x26, _) => TsqlType::BigInt,
                (0x68, _) => TsqlType::Bit,
                (0x6D, 4) => TsqlType::Real,
                (0x6D, _) => TsqlType::Float,
                (0x6E, 4) => TsqlType::SmallMoney,
                (0x6E, _) => TsqlType::Money,
                (0x6F, 4) => TsqlType::SmallDateTime,
                _ => TsqlType::DateTime,
            };
            let n = r.u8()? as usize;
            if n == 0 {
                return Ok((ty, Value::Null));
            }
            let b = r.bytes(n)?;
            let v = match t {
                0x26 | 0x68 => int_like(&ty, b),
                0x6D if n == 4 => {
                    Value::Float(f32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64)
                }
                0x6D => Value::Float(f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
                0x6E => money(b),
                _ => datetime(b),
            };
            Ok((ty, v))
        }
        0x6A | 0x6C | 0x37 | 0x3F => {
            let _max = r.u8()?;
            let precision = r.u8()?;
            let scale = r.u8()?;
            let ty = TsqlType::Decimal {
                precision: precision.clamp(1, 38),
                scale,
                numeric: t == 0x6C,
            };
            let n = r.u8()? as usize;
            if n == 0 {
                return Ok((ty, Value::Null));
            }
            let b = r.bytes(n)?;
            let mut m: u128 = 0;
            for (i, x) in b[1..].iter().enumerate().take(16) {
                m |= (*x as u128) << (8 * i);
            }
            let m = i128::try_from(m).map_err(|_| invalid("decimal out of range".into()))?;
            let mantissa = if b[0] == 1 { m } else { -m };
            Ok((ty, Value::Decimal(Dec { mantissa, scale })))
        }
        0x24 => {
            let _max = r.u8()?;
            let n = r.u8()? as usize;
            if n == 0 {
                return Ok((TsqlType::UniqueIdentifier, Value::Null));
            }
            let b: [u8; 16] = r
                .bytes(n)?
                .try_into()
                .map_err(|_| invalid("uniqueidentifier of bad length".into()))?;
            Ok((
                TsqlType::UniqueIdentifier,
                Value::Uuid(crate::value::uuid_to_wire(&b)),
            ))
        }
        0x28 => {
            let n = r.u8()? as usize;
            if n == 0 {
                return Ok((TsqlType::Date, Value::Null));
            }
            Ok((TsqlType::Date, Value::Date(le_uint(r.bytes(3)?) as i64)))
        }
        0x29..=0x2B => {
            let scale = r.u8()?.min(7);
            let ty = match t {
                0x29 => TsqlType::Time(scale),
                0x2A => TsqlType::DateTime2(scale),
                _ => TsqlType::DateTimeOffset(scale),
            };
            let n = r.u8()? as usize;
            if n == 0 {
                return Ok((ty, Value::Null));
            }
            let b = r.bytes(n)?;
            let tl = crate::types::time_bytes(scale) as usize;
            let ticks = read_time(&b[..tl.min(b.len())], scale);
            let v = match t {
                0x29 => Value::Time(ticks),
                0x2A => Value::DateTime(le_uint(&b[tl..tl + 3]) as i64, ticks),
                _ => {
                    let days = le_uint(&b[tl..tl + 3]) as i64;
                    let off = i16::from_le_bytes([b[tl + 3], b[tl + 4]]);
                    // UTC on the wire; stored as local time plus offset.
                    let total = days as i128 * TICKS_PER_DAY as i128
                        + ticks as i128
                        + off as i128 * 600_000_000;
                    Value::DateTimeOffset(
                        total.div_euclid(TICKS_PER_DAY as i128) as i64,
                        total.rem_euclid(TICKS_PER_DAY as i128) as u64,
                        off,
                    )
                }
            };
            Ok((ty, v))
        }
        0xA5 | 0xAD | 0xA7 | 0xAF | 0xE7 | 0xEF => {
            let max = r.u16()?;
            if matches!(t, 0xA7 | 0xAF | 0xE7 | 0xEF) {
                r.bytes(5)?;
            }
            let len = if max == 0xFFFF {
                Len::Max
            } else {
                Len::N(max.max(1))
            };
            let unicode = matches!(t, 0xE7 | 0xEF);
            let ty = match t {
                0xA5 => TsqlType::VarBinary(len),
                0xAD => TsqlType::Binary(max.max(1)),
                0xA7 => TsqlType::VarChar(len),
                0xAF => TsqlType::Char(max.max(1)),
                0xE7 => TsqlType::NVarChar(match len {
                    Len::N(n) => Len::N((n / 2).max(1)),
                    Len::Max => Len::Max,
                }),
                _ => TsqlType::NChar((max / 2).max(1)),
            };
            let bytes = if max == 0xFFFF {
                read_plp(r)?
            } else {
                let n = r.u16()?;
                if n == 0xFFFF {
                    None
                } else {
                    Some(r.bytes(n as usize)?.to_vec())
                }
            };
            let v = match bytes {
                None => Value::Null,
                Some(b) if matches!(t, 0xA5 | 0xAD) => Value::Bytes(b),
                Some(b) if unicode => Value::Text(utf16le_bytes_to_stored(&b)),
                Some(b) => Value::Text(cp1252_to_stored(&b)),
            };
            Ok((ty, v))
        }
        0xF1 => {
            let schema = r.u8()?;
            if schema != 0 {
                let _db = r.b_varchar()?;
                let _owner = r.b_varchar()?;
                let n = r.u16()? as usize;
                r.bytes(n * 2)?;
            }
            let v = match read_plp(r)? {
                None => Value::Null,
                Some(b) => Value::Text(utf16le_bytes_to_stored(&b)),
            };
            Ok((TsqlType::Xml, v))
        }
        0x23 | 0x63 | 0x22 => {
            let _max = r.u32()?;
            if t != 0x22 {
                r.bytes(5)?;
            }
            let n = r.u32()?;
            let ty = match t {
                0x23 => TsqlType::Text,
                0x63 => TsqlType::NText,
                _ => TsqlType::Image,
            };
            if n == u32::MAX {
                return Ok((ty, Value::Null));
            }
            let b = r.bytes(n as usize)?;
            let v = match t {
                0x23 => Value::Text(cp1252_to_stored(b)),
                0x63 => Value::Text(utf16le_bytes_to_stored(b)),
                _ => Value::Bytes(b.to_vec()),
            };
            Ok((ty, v))
        }
        other => Err(invalid(format!(
            "parameter type {other:#04x} is not supported"
        ))),
    }
}

fn int_like(ty: &TsqlType, b: &[u8]) -> Value {
    let v = match b.len() {
        1 => b[0] as i64,
        2 => i16::from_le_bytes([b[0], b[1]]) as i64,
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
    };
    match ty {
        TsqlType::Bit => Value::Int((v != 0) as i64),
        _ => Value::Int(v),
    }
}

fn money(b: &[u8]) -> Value {
    let m = if b.len() == 8 {
        let hi = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
        let lo = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as i64;
        (hi << 32) | lo
    } else {
        i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
    };
    Value::Decimal(Dec {
        mantissa: m as i128,
        scale: 4,
    })
}

fn datetime(b: &[u8]) -> Value {
    const EPOCH: i64 = 693_595;
    if b.len() == 8 {
        let days = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
        let t300 = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64;
        // 1/300 s to 100 ns, rounded to the nearest tick.
        let ticks = (t300 * 10_000_000 + 150) / 300;
        Value::DateTime(days + EPOCH, ticks)
    } else {
        let days = u16::from_le_bytes([b[0], b[1]]) as i64;
        let minutes = u16::from_le_bytes([b[2], b[3]]) as u64;
        Value::DateTime(days + EPOCH, minutes * 600_000_000)
    }
}
