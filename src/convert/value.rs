//! One cell from SQL Server (tiberius `ColumnData`) to a [`Value`] of the planned target type.
//!
//! Contract: exact unless a policy says otherwise, and every policy-driven change is counted in
//! [`Losses`]. An impossible conversion is an error naming the column; the caller adds the table
//! and key.

use super::{ColumnPlan, LossKind, Losses, TargetKind};
use crate::config::{InvalidXmlPolicy, NulPolicy, Policies, SubMicrosecondPolicy};
use crate::model::Value;
use tiberius::ColumnData;

/// Days from 0001-01-01 (SQL Server's date origin) to 2000-01-01 (PostgreSQL's epoch).
pub const DAYS_0001_TO_2000: i64 = 730_119;
/// Days from 1900-01-01 (datetime's origin) to 2000-01-01.
pub const DAYS_1900_TO_2000: i64 = 36_524;
/// Microseconds per day.
pub const US_PER_DAY: i64 = 86_400_000_000;

/// Why a cell could not be converted (the caller names table and key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConvertError {
    /// Target column.
    pub column: String,
    /// What is wrong, and which setting would change it.
    pub message: String,
}

fn fail(col: &ColumnPlan, message: impl Into<String>) -> ConvertError {
    ConvertError {
        column: col.target.clone(),
        message: message.into(),
    }
}

/// Converts one cell. Consumes it so strings and bytes move without copying.
pub fn to_value(
    cell: ColumnData<'_>,
    col: &ColumnPlan,
    policies: &Policies,
    losses: &mut Losses,
) -> Result<Value, ConvertError> {
    use ColumnData as C;
    use TargetKind as K;
    let kind = col.kind;
    let v = match cell {
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
        | C::DateTimeOffset(None) => Value::Null,
        C::U8(Some(v)) => int_to(v as i64, col)?,
        C::I16(Some(v)) => int_to(v as i64, col)?,
        C::I32(Some(v)) => int_to(v as i64, col)?,
        C::I64(Some(v)) => int_to(v, col)?,
        C::F32(Some(v)) => match kind {
            K::Float4 => Value::F32(v),
            K::Float8 => Value::F64(v as f64),
            K::Text | K::Varchar(_) => Value::Text(v.to_string()),
            _ => return Err(mismatch(col, "real")),
        },
        C::F64(Some(v)) => match kind {
            K::Float8 => Value::F64(v),
            K::Float4 if (v as f32) as f64 == v || v.is_nan() => Value::F32(v as f32),
            K::Float4 => return Err(fail(col, format!("{v} does not fit real exactly"))),
            K::Text | K::Varchar(_) => Value::Text(v.to_string()),
            _ => return Err(mismatch(col, "float")),
        },
        C::Bit(Some(b)) => match kind {
            K::Bool => Value::Bool(b),
            K::Int2 => Value::I16(b as i16),
            K::Int4 => Value::I32(b as i32),
            K::Int8 => Value::I64(b as i64),
            K::Text | K::Varchar(_) => Value::Text(if b { "1" } else { "0" }.into()),
            _ => return Err(mismatch(col, "bit")),
        },
        C::String(Some(s)) if col.variant => variant_to(&s, col, policies, losses)?,
        C::String(Some(s)) => text_to(s.into_owned(), col, policies, losses)?,
        C::Xml(Some(x)) => text_to(x.into_owned().into_string(), col, policies, losses)?,
        C::Binary(Some(b)) => {
            let b = b.into_owned();
            if col.utf16_expr.is_some() {
                let s = decode_utf16(&b, col, losses)?;
                text_to(s, col, policies, losses)?
            } else {
                match kind {
                    K::Bytea | K::Geometry | K::Geography if col.spatial => {
                        Value::Bytes(ewkb(&b).map_err(|why| fail(col, &why))?)
                    }
                    K::Bytea => Value::Bytes(b),
                    K::Text | K::Varchar(_) | K::Xml => match String::from_utf8(b) {
                        Ok(s) => text_to(s, col, policies, losses)?,
                        Err(_) => {
                            return Err(fail(
                                col,
                                "binary value is not UTF-8 text; map the column to bytea",
                            ))
                        }
                    },
                    _ => return Err(mismatch(col, "binary")),
                }
            }
        }
        C::Guid(Some(u)) => match kind {
            K::Uuid => Value::Uuid(*u.as_bytes()),
            K::Text | K::Varchar(_) => Value::Text(u.hyphenated().to_string().to_uppercase()),
            K::Bytea => Value::Bytes(u.as_bytes().to_vec()),
            _ => return Err(mismatch(col, "uniqueidentifier")),
        },
        C::Numeric(Some(n)) => {
            let (mantissa, scale) = (n.value(), n.scale());
            match kind {
                K::Numeric(Some((p, s))) => {
                    let v = rescale(mantissa, scale, s).ok_or_else(|| {
                        fail(
                            col,
                            format!(
                                "{} has more than {s} decimal places; widen columns.{}.type",
                                render_decimal(mantissa, scale),
                                col.source
                            ),
                        )
                    })?;
                    if digits(v) > p as u32 {
                        return Err(fail(
                            col,
                            format!(
                                "{} does not fit numeric({p},{s})",
                                render_decimal(mantissa, scale)
                            ),
                        ));
                    }
                    Value::Numeric {
                        mantissa: v,
                        scale: s,
                    }
                }
                K::Numeric(None) => Value::Numeric { mantissa, scale },
                K::Text | K::Varchar(_) => Value::Text(render_decimal(mantissa, scale)),
                K::Float8 => {
                    Value::F64(render_decimal(mantissa, scale).parse().unwrap_or(f64::NAN))
                }
                K::Int8 if scale == 0 && i64::try_from(mantissa).is_ok() => {
                    Value::I64(mantissa as i64)
                }
                _ => return Err(mismatch(col, "decimal")),
            }
        }
        C::DateTime(Some(dt)) => {
            let days = dt.days() as i64 - DAYS_1900_TO_2000;
            // 1/300 s ticks to microseconds, rounded half up (SQL Server's own conversion).
            let us = (dt.seconds_fragments() as i64 * 20_000 + 3) / 6;
            temporal_to(days * US_PER_DAY + us, 6, col)?
        }
        C::SmallDateTime(Some(dt)) => {
            let days = dt.days() as i64 - DAYS_1900_TO_2000;
            temporal_to(
                days * US_PER_DAY + dt.seconds_fragments() as i64 * 60_000_000,
                0,
                col,
            )?
        }
        C::Date(Some(d)) => {
            let days = d.days() as i64 - DAYS_0001_TO_2000;
            match kind {
                K::Date => Value::Date(days as i32),
                K::Timestamp => Value::Timestamp(days * US_PER_DAY),
                K::Text | K::Varchar(_) => Value::Text(render_date(days)),
                _ => return Err(mismatch(col, "date")),
            }
        }
        C::Time(Some(t)) => {
            let us = to_micros(t.increments(), t.scale(), col, policies, losses)?;
            match kind {
                K::Time => Value::Time(us),
                K::Text | K::Varchar(_) => Value::Text(render_time(t.increments(), t.scale())),
                _ => return Err(mismatch(col, "time")),
            }
        }
        C::DateTime2(Some(dt)) => {
            let days = dt.date().days() as i64 - DAYS_0001_TO_2000;
            let t = dt.time();
            if matches!(kind, K::Text | K::Varchar(_)) {
                Value::Text(format!(
                    "{} {}",
                    render_date(days),
                    render_time(t.increments(), t.scale())
                ))
            } else {
                let us = to_micros(t.increments(), t.scale(), col, policies, losses)?;
                temporal_to(days * US_PER_DAY + us, t.scale(), col)?
            }
        }
        C::DateTimeOffset(Some(dto)) => {
            let dt = dto.datetime2();
            let days = dt.date().days() as i64 - DAYS_0001_TO_2000;
            let t = dt.time();
            match kind {
                K::TimestampTz => {
                    let us = to_micros(t.increments(), t.scale(), col, policies, losses)?;
                    Value::TimestampTz(days * US_PER_DAY + us)
                }
                K::Text | K::Varchar(_) => {
                    // The UTC instant shown in its own offset, as SQL Server prints it.
                    let off = dto.offset() as i64;
                    let local_units = (t.increments() as i128)
                        + (off as i128) * 60 * 10i128.pow(t.scale() as u32);
                    let per_day = 86_400 * 10i128.pow(t.scale() as u32);
                    let d = days + local_units.div_euclid(per_day) as i64;
                    let units = local_units.rem_euclid(per_day) as u64;
                    let sign = if off < 0 { '-' } else { '+' };
                    Value::Text(format!(
                        "{} {} {sign}{:02}:{:02}",
                        render_date(d),
                        render_time(units, t.scale()),
                        off.abs() / 60,
                        off.abs() % 60
                    ))
                }
                _ => return Err(mismatch(col, "datetimeoffset")),
            }
        }
    };
    if v == Value::Null && col.not_null {
        return Err(fail(col, "NULL in a NOT NULL column"));
    }
    Ok(v)
}

fn mismatch(col: &ColumnPlan, from: &str) -> ConvertError {
    fail(
        col,
        format!(
            "a {from} value cannot become {}; change columns.{}.type",
            col.kind.ddl(),
            col.source
        ),
    )
}

fn int_to(v: i64, col: &ColumnPlan) -> Result<Value, ConvertError> {
    let out_of_range = || fail(col, format!("{v} is out of range for {}", col.kind.ddl()));
    Ok(match col.kind {
        TargetKind::Int2 => Value::I16(i16::try_from(v).map_err(|_| out_of_range())?),
        TargetKind::Int4 => Value::I32(i32::try_from(v).map_err(|_| out_of_range())?),
        TargetKind::Int8 => Value::I64(v),
        TargetKind::Numeric(Some((p, _))) if digits(v as i128) > p as u32 => {
            return Err(out_of_range())
        }
        TargetKind::Numeric(Some((_, s))) => Value::Numeric {
            mantissa: (v as i128) * 10i128.pow(s as u32),
            scale: s,
        },
        TargetKind::Numeric(None) => Value::Numeric {
            mantissa: v as i128,
            scale: 0,
        },
        TargetKind::Float8 => Value::F64(v as f64),
        TargetKind::Text | TargetKind::Varchar(_) => Value::Text(v.to_string()),
        TargetKind::Bool => Value::Bool(v != 0),
        _ => return Err(mismatch(col, "integer")),
    })
}

/// Applies the NUL policy and the varchar length to text.
fn text_to(
    mut s: String,
    col: &ColumnPlan,
    policies: &Policies,
    losses: &mut Losses,
) -> Result<Value, ConvertError> {
    if col.kind == TargetKind::Bytea {
        return Ok(Value::Bytes(s.into_bytes()));
    }
    if col.kind == TargetKind::Ltree {
        return ltree_of_path(&s)
            .map(|l| {
                // ltree's binary form: a version byte, then the text.
                let mut b = vec![1u8];
                b.extend_from_slice(l.as_bytes());
                Value::Bytes(b)
            })
            .map_err(|why| fail(col, why));
    }
    if !col.kind.is_text() {
        return match col.kind {
            TargetKind::Uuid => uuid::Uuid::parse_str(s.trim())
                .map(|u| Value::Uuid(*u.as_bytes()))
                .map_err(|_| fail(col, "text is not a uuid")),
            _ => Err(mismatch(col, "text")),
        };
    }
    s = without_nul(s, col, policies, losses)?;
    if col.kind == TargetKind::Xml {
        if let Err(why) = well_formed_content(&s) {
            return match policies.invalid_xml {
                InvalidXmlPolicy::Null => {
                    losses.add(&col.target, LossKind::XmlNulled);
                    Ok(Value::Null)
                }
                InvalidXmlPolicy::Fail => Err(fail(
                    col,
                    format!(
                        "xml that PostgreSQL's parser refuses ({why}); policies.invalid_xml = \"null\" \
                         writes NULL instead (counted), or map the column to text"
                    ),
                )),
            };
        }
    }
    if let TargetKind::Varchar(n) = col.kind {
        // Bytes bound characters from above: count characters only when it could matter.
        if s.len() > n as usize && s.chars().count() > n as usize {
            return Err(fail(
                col,
                format!(
                    "text longer than varchar({n}); set columns.{}.type = \"text\"",
                    col.source
                ),
            ));
        }
    }
    Ok(Value::Text(s))
}

/// Applies the NUL policy: PostgreSQL's text, xml and jsonb hold no NUL character.
fn without_nul(
    s: String,
    col: &ColumnPlan,
    policies: &Policies,
    losses: &mut Losses,
) -> Result<String, ConvertError> {
    if !s.contains('\0') {
        return Ok(s);
    }
    match policies.nul_characters {
        NulPolicy::Strip => {
            losses.add(&col.target, LossKind::NulStripped);
            Ok(s.replace('\0', ""))
        }
        NulPolicy::Replace => {
            losses.add(&col.target, LossKind::NulReplaced);
            Ok(s.replace('\0', &policies.nul_replacement))
        }
        NulPolicy::Fail => Err(fail(
            col,
            "text contains a NUL character, which PostgreSQL cannot store (policies.nul_characters = \"fail\"; \
             \"strip\" or \"replace\" keep going, or map the column to bytea)",
        )),
    }
}

/// A sql_variant read as `base:text` ([`super::variant_read`]): into text, the value (a float
/// in its shortest exact form); into jsonb, `{"type": base, "value": v}` exactly as PostgreSQL
/// renders that jsonb (so validation compares the bytes), the value a JSON number for the
/// numeric base types, a boolean for bit, a string otherwise.
fn variant_to(
    s: &str,
    col: &ColumnPlan,
    policies: &Policies,
    losses: &mut Losses,
) -> Result<Value, ConvertError> {
    let Some((base, text)) = s.split_once(':') else {
        return Err(fail(col, "a sql_variant read without its base type"));
    };
    let bad = |what: &str| {
        fail(
            col,
            format!("a sql_variant of base type {base} is not {what}"),
        )
    };
    let text = match base {
        "float" => {
            let f: f64 = text.trim().parse().map_err(|_| bad("a number"))?;
            if f == 0.0 { 0.0 } else { f }.to_string()
        }
        "real" => {
            let f: f32 = text.trim().parse().map_err(|_| bad("a number"))?;
            if f == 0.0 { 0.0 } else { f }.to_string()
        }
        _ => text.to_string(),
    };
    if col.kind != TargetKind::Jsonb {
        return text_to(text, col, policies, losses);
    }
    let value = match base {
        "tinyint" | "smallint" | "int" | "bigint" | "decimal" | "numeric" | "money"
        | "smallmoney" | "float" | "real" => {
            let t = text.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            let plain = match digits.split_once('.') {
                Some((i, f)) => {
                    !i.is_empty()
                        && !f.is_empty()
                        && (i.bytes().chain(f.bytes())).all(|b| b.is_ascii_digit())
                }
                None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            };
            if !plain {
                return Err(bad("a decimal number"));
            }
            t.to_string()
        }
        "bit" => match text.trim() {
            "1" => "true".to_string(),
            "0" => "false".to_string(),
            _ => return Err(bad("0 or 1")),
        },
        _ => json_string(&without_nul(text, col, policies, losses)?),
    };
    let json = format!("{{\"type\": {}, \"value\": {value}}}", json_string(base));
    // jsonb's binary form: a version byte, then the text.
    let mut b = Vec::with_capacity(json.len() + 1);
    b.push(1u8);
    b.extend_from_slice(json.as_bytes());
    Ok(Value::Bytes(b))
}

/// A JSON string as PostgreSQL's jsonb output escapes it.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// UTF-16LE to a string; lone surrogates become U+FFFD and are counted.
fn decode_utf16(b: &[u8], col: &ColumnPlan, losses: &mut Losses) -> Result<String, ConvertError> {
    if !b.len().is_multiple_of(2) {
        return Err(fail(col, "odd number of bytes in UTF-16 text"));
    }
    // Fast path: ASCII-only text is most text.
    if b.chunks_exact(2).all(|c| c[1] == 0 && c[0] < 0x80) {
        let ascii: Vec<u8> = b.iter().step_by(2).copied().collect();
        return String::from_utf8(ascii).map_err(|_| fail(col, "invalid text"));
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut out = String::with_capacity(b.len() / 2);
    let mut lossy = false;
    for r in char::decode_utf16(units) {
        match r {
            Ok(c) => out.push(c),
            Err(_) => {
                out.push('\u{FFFD}');
                lossy = true;
            }
        }
    }
    if lossy {
        losses.add(&col.target, LossKind::LoneSurrogateReplaced);
    }
    Ok(out)
}

/// Increments of 10^-scale seconds to microseconds, applying the sub-microsecond policy.
fn to_micros(
    increments: u64,
    scale: u8,
    col: &ColumnPlan,
    policies: &Policies,
    losses: &mut Losses,
) -> Result<i64, ConvertError> {
    if scale <= 6 {
        return Ok(increments as i64 * 10i64.pow(6 - scale as u32));
    }
    let div = 10u64.pow(scale as u32 - 6);
    if !increments.is_multiple_of(div) {
        match policies.sub_microsecond {
            SubMicrosecondPolicy::Truncate => losses.add(&col.target, LossKind::SubMicrosecondTruncated),
            SubMicrosecondPolicy::Fail => {
                return Err(fail(
                    col,
                    format!(
                        "{} has digits below a microsecond (policies.sub_microsecond = \"fail\"; \"truncate\" keeps going, \
                         or set columns.{}.type = \"text\")",
                        render_time(increments, scale),
                        col.source
                    ),
                ))
            }
        }
    }
    // Truncation never crosses a day boundary: increments < one day, and we only drop digits.
    Ok((increments / div) as i64)
}

fn temporal_to(us_since_2000: i64, scale: u8, col: &ColumnPlan) -> Result<Value, ConvertError> {
    Ok(match col.kind {
        TargetKind::Timestamp => Value::Timestamp(us_since_2000),
        TargetKind::TimestampTz => Value::TimestampTz(us_since_2000),
        TargetKind::Date if us_since_2000.rem_euclid(US_PER_DAY) == 0 => {
            Value::Date(us_since_2000.div_euclid(US_PER_DAY) as i32)
        }
        TargetKind::Text | TargetKind::Varchar(_) => {
            let days = us_since_2000.div_euclid(US_PER_DAY);
            let us = us_since_2000.rem_euclid(US_PER_DAY) as u64;
            let _ = scale;
            Value::Text(format!("{} {}", render_date(days), render_time(us, 6)))
        }
        _ => return Err(mismatch(col, "datetime")),
    })
}

/// Digits of |v|.
fn digits(v: i128) -> u32 {
    let mut n = v.unsigned_abs();
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `mantissa * 10^-from` as a mantissa of scale `to`; `None` if digits would be lost.
fn rescale(mantissa: i128, from: u8, to: u8) -> Option<i128> {
    if to >= from {
        mantissa.checked_mul(10i128.checked_pow((to - from) as u32)?)
    } else {
        let div = 10i128.pow((from - to) as u32);
        (mantissa % div == 0).then_some(mantissa / div)
    }
}

pub use crate::model::render_decimal;

/// `YYYY-MM-DD` of days since 2000-01-01.
pub fn render_date(days_since_2000: i64) -> String {
    match chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days_since_2000)))
    {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => format!("day {days_since_2000}"),
    }
}

/// `hh:mm:ss[.fffffff]` of increments of 10^-scale seconds since midnight.
pub fn render_time(increments: u64, scale: u8) -> String {
    let per_sec = 10u64.pow(scale as u32);
    let secs = increments / per_sec;
    let frac = increments % per_sec;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if scale == 0 {
        base
    } else {
        format!("{base}.{:0width$}", frac, width = scale as usize)
    }
}

/// Extended WKB (PostGIS's form: the SRID inside the geometry) of a spatial column's read value,
/// its SRID as 4 big-endian bytes followed by its WKB (`CAST(c.STSrid AS binary(4)) +
/// c.STAsBinary()`). The SRID is set in the outer geometry's header in the WKB's own byte
/// order; an SRID of 0 (none) leaves the WKB as it is, as PostGIS writes it.
pub fn ewkb(read: &[u8]) -> Result<Vec<u8>, String> {
    const SRID_FLAG: u32 = 0x2000_0000;
    let bad = || "a spatial value that is not an SRID followed by WKB".to_string();
    let (srid, wkb) = read.split_first_chunk::<4>().ok_or_else(bad)?;
    let srid = u32::from_be_bytes(*srid);
    let (order, rest) = wkb.split_first().ok_or_else(bad)?;
    let (ty, body) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let ty = match order {
        0 => u32::from_be_bytes(*ty),
        1 => u32::from_le_bytes(*ty),
        _ => return Err(format!("WKB byte order {order} is neither 0 nor 1")),
    };
    if srid == 0 {
        return Ok(wkb.to_vec());
    }
    let mut out = Vec::with_capacity(wkb.len() + 4);
    out.push(*order);
    let put = |out: &mut Vec<u8>, v: u32| match order {
        0 => out.extend_from_slice(&v.to_be_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    };
    put(&mut out, ty | SRID_FLAG);
    put(&mut out, srid);
    out.extend_from_slice(body);
    Ok(out)
}

/// Whether `s` is well-formed XML content as PostgreSQL's `xml` type takes it (`XMLOPTION
/// CONTENT`): an optional XML declaration, then elements, text, comments and processing
/// instructions in any number; a document with a DOCTYPE is parsed as a document. A namespace
/// prefix nobody declared passes, as PostgreSQL lets it. `Err` says what is wrong and where,
/// never the text itself.
pub fn well_formed_content(s: &str) -> Result<(), String> {
    let body = match s.trim_start().strip_prefix("<?xml") {
        Some(rest) if rest.starts_with(|c: char| c.is_whitespace()) => rest
            .split_once("?>")
            .map(|(_, after)| after)
            .ok_or("an XML declaration without its end")?,
        _ => s,
    };

    if body.trim_start().starts_with("<!DOCTYPE") {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        return roxmltree::Document::parse_with_options(body, opts)
            .map(|_| ())
            .map_err(describe_xml_error);
    }
    // Content may hold several elements and text: parsed inside one element. PostgreSQL (libxml2)
    // only warns of a namespace prefix nobody declared, so each one is declared on that element.
    let mut prefixes: Vec<String> = Vec::new();
    loop {
        let declared: String = prefixes
            .iter()
            .map(|p| format!(" xmlns:{p}=\"urn:undeclared\""))
            .collect();
        let wrapped = format!("<r{declared}>{body}</r>");
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        match roxmltree::Document::parse_with_options(&wrapped, opts).map(|_| ()) {
            Ok(()) => return Ok(()),
            Err(roxmltree::Error::UnknownNamespace(p, _))
                if prefixes.len() < 64 && !prefixes.contains(&p) =>
            {
                prefixes.push(p)
            }
            Err(e) => return Err(describe_xml_error(e)),
        }
    }
}

fn describe_xml_error(e: roxmltree::Error) -> String {
    {
        use roxmltree::Error as E;
        match e {
            E::UnknownEntityReference(..) => "a reference to an undeclared entity".to_string(),
            E::UnexpectedCloseTag(..) => "a closing tag that does not match".to_string(),
            E::UnexpectedEndOfStream => "it ends inside an element".to_string(),
            other => format!("not well-formed at {}", other.pos()),
        }
    }
}

/// The ltree of a hierarchyid's path (`/1/3/` -> `1.3`, the root `/` -> the empty path). A label
/// keeps its number; a dotted one (`2.5`, inserted between 2 and 3) becomes `2_5`, a negative one
/// `-1` becomes `n1`: ltree labels hold letters, digits and `_` only. Refuses anything that is
/// not a hierarchyid path.
pub fn ltree_of_path(path: &str) -> Result<String, String> {
    let inner = match path.strip_prefix('/') {
        Some("") => return Ok(String::new()),
        Some(p) => p.strip_suffix('/'),
        None => None,
    }
    .ok_or("not a hierarchyid path (/1/2/)")?;
    inner
        .split('/')
        .map(|label| {
            let ok = !label.is_empty()
                && label.split('.').all(|n| {
                    let n = n.strip_prefix('-').unwrap_or(n);
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                });
            if !ok {
                return Err("not a hierarchyid path (/1/2/)".to_string());
            }
            Ok(label.replace('.', "_").replace('-', "n"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|labels| labels.join("."))
}
