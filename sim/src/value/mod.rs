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

mod pg;
pub mod spatial;
mod tds;
mod temporal;
#[cfg(test)]
mod tests;
mod text;

pub use pg::*;
pub use tds::*;
pub use temporal::*;
pub use text::*;

/// The escape character of stored text (a Unicode noncharacter, U+10FFFF).
pub const ESC: char = '\u{10FFFF}';

/// Ticks (100 ns) in a day.
pub const TICKS_PER_DAY: u64 = 864_000_000_000;
/// Days from 0001-01-01 to 2000-01-01 (PostgreSQL's epoch).
pub(super) const PG_EPOCH_DAYS: i64 = 730_119;
/// Days from 0001-01-01 to 1900-01-01 (datetime's epoch).
pub(super) const DATETIME_EPOCH_DAYS: i64 = 693_595;

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

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}
