//! PostgreSQL: binary values decoded, encoded straight to TDS on the fast path, and literals.

use crate::types::{Len, TsqlType};
use chrono::NaiveDate;

use super::*;

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
        // A sql_variant (`_sim.variant`, a composite of base type and text): the value's text.
        _ if ty.name() == "variant" => match composite_field(raw, 1)? {
            None => Value::Null,
            Some(b) => Value::Text(
                String::from_utf8(b.to_vec())
                    .map_err(|_| ValueError("invalid UTF-8 from PostgreSQL".into()))?,
            ),
        },
        _ => {
            return err(format!(
                "PostgreSQL type {} has no T-SQL equivalent here",
                ty.name()
            ))
        }
    };
    Ok(v)
}

/// Field `index` of a composite value in PostgreSQL's binary format (a count, then each
/// field's type oid, length or -1 for NULL, and bytes).
fn composite_field(raw: &[u8], index: usize) -> Result<Option<&[u8]>, ValueError> {
    let bad = || ValueError("truncated composite".into());
    let be4 = |at: usize| -> Result<[u8; 4], ValueError> {
        raw.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)
    };
    let count = i32::from_be_bytes(be4(0)?) as usize;
    let mut at = 4;
    for i in 0..count {
        let len = i32::from_be_bytes(be4(at + 4)?);
        at += 8;
        let field = if len < 0 {
            None
        } else {
            let b = raw.get(at..at + len as usize).ok_or_else(bad)?;
            at += len as usize;
            Some(b)
        };
        if i == index {
            return Ok(field);
        }
    }
    Err(bad())
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

// ---------- fast path: PostgreSQL binary straight to TDS ----------

/// Appends `s` (stored form) as UTF-16LE; ASCII without escapes takes a byte loop.
pub(super) fn put_utf16_stored(buf: &mut Vec<u8>, s: &str) {
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

pub(super) fn digits(b: &[u8]) -> Option<u64> {
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
pub(super) fn parse_canonical_datetime2(b: &[u8]) -> Option<(i64, u64)> {
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
