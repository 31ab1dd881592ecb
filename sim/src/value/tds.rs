//! TDS: values coerced to a column's declared type and encoded as the ROW token carries them.

use crate::types::{decimal_bytes, time_bytes, TsqlType};

use super::*;

pub(super) fn as_i64(v: &Value) -> Result<i64, ValueError> {
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

pub(super) fn as_dec(v: &Value) -> Result<Dec, ValueError> {
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

pub(super) fn as_f64(v: &Value) -> Result<f64, ValueError> {
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

pub(super) fn as_text(v: &Value) -> String {
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
pub(super) fn as_datetime(v: &Value) -> Result<(i64, u64, Option<i16>), ValueError> {
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
pub(super) fn round_ticks(ticks: u64, scale: u8) -> (u64, bool) {
    let unit = 10u64.pow(7 - scale as u32);
    let t = (ticks + unit / 2) / unit * unit;
    if t >= TICKS_PER_DAY {
        (t - TICKS_PER_DAY, true)
    } else {
        (t, false)
    }
}

pub(super) fn put_time(buf: &mut Vec<u8>, ticks: u64, scale: u8) {
    let n = ticks / 10u64.pow(7 - scale as u32);
    let len = time_bytes(scale) as usize;
    buf.extend_from_slice(&n.to_le_bytes()[..len]);
}

pub(super) fn put_days(buf: &mut Vec<u8>, days: i64) {
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

pub(super) fn put_plp(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    if !data.is_empty() {
        buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
        buf.extend_from_slice(data);
    }
    buf.extend_from_slice(&0u32.to_le_bytes());
}

pub(super) fn put_var(
    buf: &mut Vec<u8>,
    ty: &TsqlType,
    data: &[u8],
    what: &str,
) -> Result<(), ValueError> {
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
