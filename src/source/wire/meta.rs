//! The parts of a response that are not rows: COLMETADATA (what each column is on the wire),
//! ERROR, and the tokens a snapshot read skips.
//!
//! Contract: every parser reads from a byte slice that may end early; running out is
//! [`Stop::More`] with the length needed (never an error), so the caller waits for the next
//! packet and parses again from the token's start.

use tiberius::Collation;

/// Why parsing stopped short of a whole token.
#[derive(Debug)]
pub enum Stop {
    /// The slice ended; at least this many bytes (from the slice's start) are needed.
    More(usize),
    /// The bytes do not form a valid or supported token.
    Bad(super::WireError),
}

/// A forward reader over a byte slice; running out is [`Stop::More`].
pub struct Cur<'a> {
    /// All bytes available.
    pub b: &'a [u8],
    /// The next byte to read.
    pub at: usize,
}

impl<'a> Cur<'a> {
    /// Reads from `at` in `b`.
    pub fn new(b: &'a [u8], at: usize) -> Self {
        Cur { b, at }
    }

    /// The next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| malformed("length overflow"))?;
        if end > self.b.len() {
            return Err(Stop::More(end));
        }
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian u16.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, Stop> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    /// A little-endian u32.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, Stop> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A little-endian u64.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, Stop> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// B_VARCHAR: a u8 count of UTF-16 code units.
    pub fn b_varchar(&mut self) -> Result<String, Stop> {
        let n = self.u8()? as usize;
        utf16_name(self.take(n * 2)?)
    }

    /// US_VARCHAR: a u16 count of UTF-16 code units.
    pub fn us_varchar(&mut self) -> Result<String, Stop> {
        let n = self.u16()? as usize;
        utf16_name(self.take(n * 2)?)
    }
}

fn utf16_name(b: &[u8]) -> Result<String, Stop> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| malformed("a name is not valid UTF-16"))
}

/// A malformed-stream stop.
pub fn malformed(what: &str) -> Stop {
    Stop::Bad(super::WireError::Malformed(what.to_string()))
}

/// How a column's values are framed in a row, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// A fixed-length type of this many bytes (never NULL on the wire except in NBCROW).
    Fixed(FixedType, u8),
    /// INTN, BITN, FLTN, MONEYN, DATETIMN, GUID, DECIMALN/NUMERICN, DATEN, TIMEN,
    /// DATETIME2N, DATETIMEOFFSETN: a u8 length, 0 = NULL.
    ByteLen(ByteLenType),
    /// BIGCHAR, BIGVARCHAR, NCHAR, NVARCHAR, BIGBINARY, BIGVARBINARY up to 8000 bytes: a u16
    /// length, 0xFFFF = NULL.
    UShortLen(Chars),
    /// The (max) types and xml: partially length-prefixed chunks.
    Plp(Chars),
    /// text, ntext, image: a text pointer, a timestamp, then an i32 length.
    Long(Chars),
}

/// The fixed-length types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedType {
    /// NULLTYPE: no data, always NULL.
    Null,
    /// tinyint
    Int1,
    /// bit
    Bit,
    /// smallint
    Int2,
    /// int
    Int4,
    /// bigint
    Int8,
    /// smalldatetime
    DateTime4,
    /// real
    Float4,
    /// money
    Money,
    /// datetime
    DateTime,
    /// float
    Float8,
    /// smallmoney
    Money4,
}

/// The u8-length-prefixed types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLenType {
    /// INTN
    Int,
    /// BITN
    Bit,
    /// FLTN
    Float,
    /// MONEYN
    Money,
    /// DATETIMN
    DateTime,
    /// GUID
    Guid,
    /// DECIMALN / NUMERICN with their scale.
    Decimal(u8),
    /// DATEN
    Date,
    /// TIMEN with its scale.
    Time(u8),
    /// DATETIME2N with its scale.
    DateTime2(u8),
    /// DATETIMEOFFSETN with its scale.
    DateTimeOffset(u8),
}

/// What the bytes of a string or binary column are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chars {
    /// Single-byte text in the collation's code page.
    CodePage(Collation),
    /// UTF-16LE text.
    Utf16,
    /// xml (UTF-16LE, decoded strictly).
    Xml,
    /// Bytes.
    Binary,
}

/// One result column.
#[derive(Debug, Clone)]
pub struct WireColumn {
    /// Its name in the result.
    pub name: String,
    /// Its wire type.
    pub ty: WireType,
}

fn fixed(ty: u8) -> Option<(FixedType, u8)> {
    use FixedType as F;
    Some(match ty {
        0x1F => (F::Null, 0),
        0x30 => (F::Int1, 1),
        0x32 => (F::Bit, 1),
        0x34 => (F::Int2, 2),
        0x38 => (F::Int4, 4),
        0x3A => (F::DateTime4, 4),
        0x3B => (F::Float4, 4),
        0x3C => (F::Money, 8),
        0x3D => (F::DateTime, 8),
        0x3E => (F::Float8, 8),
        0x7A => (F::Money4, 4),
        0x7F => (F::Int8, 8),
        _ => return None,
    })
}

fn collation(c: &mut Cur<'_>) -> Result<Collation, Stop> {
    let info = c.u32()?;
    let sort_id = c.u8()?;
    Ok(Collation::new(info, sort_id))
}

/// TYPE_INFO of one column (MS-TDS 2.2.5.6). A type the fast path does not read (sql_variant,
/// CLR types, the pre-7.0 types) is [`super::WireError::Unsupported`].
fn type_info(c: &mut Cur<'_>) -> Result<WireType, Stop> {
    let ty = c.u8()?;
    if let Some((f, n)) = fixed(ty) {
        return Ok(WireType::Fixed(f, n));
    }
    use ByteLenType as B;
    let t = match ty {
        0x26 | 0x68 | 0x6D | 0x6E | 0x6F | 0x24 => {
            let _max = c.u8()?;
            WireType::ByteLen(match ty {
                0x26 => B::Int,
                0x68 => B::Bit,
                0x6D => B::Float,
                0x6E => B::Money,
                0x6F => B::DateTime,
                _ => B::Guid,
            })
        }
        0x6A | 0x6C => {
            let _max = c.u8()?;
            let precision = c.u8()?;
            let scale = c.u8()?;
            if precision > 38 || scale > precision {
                return Err(malformed("decimal precision or scale out of range"));
            }
            WireType::ByteLen(B::Decimal(scale))
        }
        0x28 => WireType::ByteLen(B::Date),
        0x29..=0x2B => {
            let scale = c.u8()?;
            if scale > 7 {
                return Err(malformed("time scale out of range"));
            }
            WireType::ByteLen(match ty {
                0x29 => B::Time(scale),
                0x2A => B::DateTime2(scale),
                _ => B::DateTimeOffset(scale),
            })
        }
        0xA5 | 0xA7 | 0xAD | 0xAF | 0xE7 | 0xEF => {
            let max = c.u16()?;
            let chars = match ty {
                0xA7 | 0xAF => Chars::CodePage(collation(c)?),
                0xE7 | 0xEF => {
                    collation(c)?;
                    Chars::Utf16
                }
                _ => Chars::Binary,
            };
            if max == 0xFFFF {
                WireType::Plp(chars)
            } else {
                WireType::UShortLen(chars)
            }
        }
        0x23 | 0x63 | 0x22 => {
            let _max = c.u32()?;
            let chars = match ty {
                0x23 => Chars::CodePage(collation(c)?),
                0x63 => {
                    collation(c)?;
                    Chars::Utf16
                }
                _ => Chars::Binary,
            };
            // The table name: a count of parts, each a US_VARCHAR.
            let parts = c.u8()?;
            for _ in 0..parts {
                c.us_varchar()?;
            }
            WireType::Long(chars)
        }
        0xF1 => {
            if c.u8()? == 1 {
                c.b_varchar()?;
                c.b_varchar()?;
                c.us_varchar()?;
            }
            WireType::Plp(Chars::Xml)
        }
        other => {
            return Err(Stop::Bad(super::WireError::Unsupported(format!(
                "wire type 0x{other:02X}"
            ))))
        }
    };
    Ok(t)
}

/// COLMETADATA after its token byte (MS-TDS 2.2.7.4). `None` columns: the "no metadata"
/// marker.
pub fn colmetadata(c: &mut Cur<'_>) -> Result<Vec<WireColumn>, Stop> {
    let n = c.u16()?;
    if n == 0xFFFF {
        return Ok(Vec::new());
    }
    let mut cols = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let _user_type = c.u32()?;
        let _flags = c.u16()?;
        let ty = type_info(c)?;
        let name = c.b_varchar()?;
        cols.push(WireColumn { name, ty });
    }
    Ok(cols)
}

/// ERROR after its token byte (MS-TDS 2.2.7.10), as the driver's own error.
pub fn error(c: &mut Cur<'_>) -> Result<tiberius::error::Error, Stop> {
    let len = c.u16()? as usize;
    let body = c.take(len)?;
    let mut b = Cur::new(body, 0);
    let parse = |b: &mut Cur<'_>| -> Result<tiberius::error::Error, Stop> {
        let code = b.u32()?;
        let state = b.u8()?;
        let class = b.u8()?;
        let message = b.us_varchar()?;
        let server = b.b_varchar()?;
        let procedure = b.b_varchar()?;
        let line = b.u32()?;
        Ok(tiberius::error::Error::Server(
            tiberius::error::TokenError::new(code, state, class, message, server, procedure, line),
        ))
    };
    parse(&mut b).map_err(|e| match e {
        Stop::More(_) => malformed("ERROR token shorter than its fields"),
        bad => bad,
    })
}
