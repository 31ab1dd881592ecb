//! The way back for values: PostgreSQL's text form of a value the fallback read (see
//! [`super::decode`]) into a T-SQL literal of the source column's type, exactly, or a refusal
//! that says why SQL Server cannot hold it.
//!
//! Contract: a literal converts to the column's type without rounding or truncation (every
//! check is made here, before SQL Server's implicit conversion could round); a value that does
//! not fit (out of range, longer than the column, more fractional digits than the column's
//! scale, a character its code page lacks, a NaN) is refused, never changed. The reader session
//! sets `DateStyle = ISO`, `TimeZone = UTC`, `bytea_output = hex` and `extra_float_digits = 3`,
//! the forms parsed here.

use crate::convert::{ColumnPlan, TargetKind};
use crate::model::SourceType;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The T-SQL literal for one value (`NULL` for none), or why SQL Server cannot hold it.
pub fn literal(col: &ColumnPlan, ty: &SourceType, text: Option<&str>) -> Result<String, String> {
    let Some(t) = text else {
        return Ok("NULL".into());
    };
    let name = ty.name.as_str();
    match name {
        "bit" => match t {
            "t" | "true" => Ok("1".into()),
            "f" | "false" => Ok("0".into()),
            // A type override to an integer: 0 and 1 only.
            "0" | "1" => Ok(t.into()),
            _ => Err(format!("{t:?} is not a bit")),
        },
        "tinyint" => integer(t, 0, 255),
        "smallint" => integer(t, i16::MIN.into(), i16::MAX.into()),
        "int" => integer(t, i32::MIN.into(), i32::MAX.into()),
        "bigint" => integer(t, i64::MIN.into(), i64::MAX.into()),
        "decimal" | "numeric" => decimal(t, ty.precision, ty.scale),
        "money" => decimal(t, 19, 4)
            .and_then(|d| in_range(&d, i128::from(i64::MIN), i128::from(i64::MAX)).map(|_| d)),
        "smallmoney" => decimal(t, 10, 4)
            .and_then(|d| in_range(&d, i128::from(i32::MIN), i128::from(i32::MAX)).map(|_| d)),
        "real" => {
            let f: f32 = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
            float(f64::from(f))
        }
        "float" if ty.precision <= 24 => {
            let f: f32 = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
            float(f64::from(f))
        }
        "float" => float(t.parse().map_err(|_| format!("{t:?} is not a number"))?),
        "date" => date(t).map(|d| format!("'{}'", d.format("%Y-%m-%d"))),
        "time" => {
            let v = NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
                .map_err(|_| format!("{t:?} is not a time SQL Server holds"))?;
            fraction_fits(v.nanosecond(), ty.scale)?;
            Ok(format!("'{}'", v.format("%H:%M:%S%.6f")))
        }
        "datetime2" => {
            let v = timestamp(t)?;
            fraction_fits(v.nanosecond(), ty.scale)?;
            Ok(format!("'{}'", v.format("%Y-%m-%dT%H:%M:%S%.6f")))
        }
        "datetime" => {
            let v = timestamp(t)?;
            if v.date() < NaiveDate::from_ymd_opt(1753, 1, 1).unwrap_or_default() {
                return Err(format!("{t} is before 1753-01-01, datetime's first day"));
            }
            // datetime counts 1/300 s: only a value the forward conversion gave can go back.
            // The forward conversion: (ticks * 20000 + 3) / 6 microseconds, per second.
            let us = i64::from(v.nanosecond() / 1000);
            let tick = (us * 300 + 500_000) / 1_000_000;
            if v.nanosecond() % 1000 != 0 || (tick * 20_000 + 3) / 6 != us {
                return Err(format!(
                    "{t} is not a datetime value: datetime counts 1/300 of a second"
                ));
            }
            Ok(format!("'{}'", v.format("%Y-%m-%dT%H:%M:%S%.3f")))
        }
        "smalldatetime" => {
            let v = timestamp(t)?;
            let low = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default();
            let high = NaiveDate::from_ymd_opt(2079, 6, 6).unwrap_or_default();
            if v.second() != 0 || v.nanosecond() != 0 || v.date() < low || v.date() > high {
                return Err(format!(
                    "{t} is not a smalldatetime (whole minutes, 1900-01-01 to 2079-06-06)"
                ));
            }
            Ok(format!("'{}'", v.format("%Y-%m-%dT%H:%M:00")))
        }
        "datetimeoffset" => {
            // UTC in this session: the instant is kept, the offset the row had is not (PostgreSQL
            // never stored it).
            let bare = t
                .strip_suffix("+00")
                .ok_or_else(|| format!("{t:?} is not in UTC"))?;
            let v = timestamp(bare)?;
            fraction_fits(v.nanosecond(), ty.scale)?;
            Ok(format!("'{}+00:00'", v.format("%Y-%m-%dT%H:%M:%S%.6f")))
        }
        "char" | "varchar" | "text" => {
            if let Some(n) = ty.char_length() {
                if t.chars().count() > n as usize {
                    return Err(format!(
                        "{} characters do not fit {}",
                        t.chars().count(),
                        ty.declaration()
                    ));
                }
            }
            let (_, _, unmappable) = encoding_rs::WINDOWS_1252.encode(t);
            if unmappable {
                return Err(format!(
                    "a character code page 1252 lacks cannot be held by {} (it would become '?')",
                    ty.declaration()
                ));
            }
            Ok(national(t))
        }
        "sql_variant" if col.kind == TargetKind::Jsonb => super::variant::literal(t),
        "nchar" | "nvarchar" | "ntext" | "xml" | "sysname" | "sql_variant" => {
            if let Some(n) = ty.char_length() {
                let units = t.encode_utf16().count();
                if units > n as usize {
                    return Err(format!(
                        "{units} UTF-16 code units do not fit {}",
                        ty.declaration()
                    ));
                }
            }
            Ok(national(t))
        }
        "hierarchyid" if col.kind == TargetKind::Ltree => Ok(national(&path_of_ltree(t)?)),
        "hierarchyid" => Ok(national(t)),
        "binary" | "varbinary" | "image" => {
            let b = bytea(t)?;
            if ty.max_length > 0 && b.len() > ty.max_length as usize {
                return Err(format!("{} bytes do not fit {}", b.len(), ty.declaration()));
            }
            Ok(hex_literal(&b))
        }
        "uniqueidentifier" => uuid::Uuid::parse_str(t)
            .map(|u| format!("'{}'", u.hyphenated()))
            .map_err(|_| format!("{t:?} is not a uniqueidentifier")),
        "geography" | "geometry" => {
            // bytea's \x form, or PostGIS's hex EWKB.
            let ewkb = if t.starts_with("\\x") {
                bytea(t)?
            } else {
                unhex(t)?
            };
            let (srid, wkb) = from_ewkb(&ewkb)?;
            Ok(format!(
                "{name}::STGeomFromWKB({}, {srid})",
                hex_literal(&wkb)
            ))
        }
        other => Err(format!("the fallback cannot write SQL Server type {other}")),
    }
}

/// The SQL Server type a column added on PostgreSQL becomes (`format_type` of its type), one
/// whose default mapping is that PostgreSQL type again; `None` when there is none.
pub fn sql_server_type(pg_type: &str) -> Option<String> {
    let t = pg_type.trim();
    let args = |prefix: &str| {
        t.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .map(str::to_string)
    };
    Some(match t {
        "boolean" => "bit".into(),
        "smallint" => "smallint".into(),
        "integer" => "int".into(),
        "bigint" => "bigint".into(),
        "real" => "real".into(),
        "double precision" => "float".into(),
        "numeric" => "decimal(38,10)".into(),
        "text" => "nvarchar(max)".into(),
        "bytea" => "varbinary(max)".into(),
        "uuid" => "uniqueidentifier".into(),
        "date" => "date".into(),
        "time without time zone" => "time(6)".into(),
        "timestamp without time zone" => "datetime2(6)".into(),
        "timestamp with time zone" => "datetimeoffset(6)".into(),
        "xml" => "xml".into(),
        _ => {
            if let Some(a) = args("numeric") {
                let (p, s) = a.split_once(',').unwrap_or((&a, "0"));
                let (p, s): (u32, u32) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                if p > 38 {
                    return None;
                }
                format!("decimal({p},{s})")
            } else if let Some(n) = args("character varying") {
                let n: u32 = n.parse().ok()?;
                if n > 4000 {
                    "nvarchar(max)".into()
                } else {
                    format!("nvarchar({n})")
                }
            } else {
                return None;
            }
        }
    })
}

/// Whether the fallback can write a column back exactly: its type is mapped the default way
/// (or as one of the options whose inverse is known). `Err` says why not.
pub fn invertible(col: &ColumnPlan, ty: &SourceType) -> Result<(), String> {
    let default = crate::convert::default_kind(&crate::model::SourceColumn {
        name: col.source.clone(),
        source_type: ty.clone(),
        nullable: true,
        identity: false,
        computed: None,
        deterministic: None,
        default: None,
    });
    let known_option = matches!(
        (ty.name.as_str(), col.kind),
        ("hierarchyid", TargetKind::Ltree)
            | ("sql_variant", TargetKind::Jsonb)
            | (
                "geography" | "geometry",
                TargetKind::Geometry | TargetKind::Geography
            )
    );
    if col.expression {
        return Err(format!("column {} is a configured expression", col.source));
    }
    match default {
        Ok(k) if k == col.kind || known_option => Ok(()),
        _ if known_option => Ok(()),
        _ => Err(format!(
            "column {} ({}) is mapped to {} by configuration; the fallback only inverts the default mapping",
            col.source,
            ty.declaration(),
            col.kind.ddl()
        )),
    }
}

pub(super) fn integer(t: &str, low: i128, high: i128) -> Result<String, String> {
    let v: i128 = t.parse().map_err(|_| format!("{t:?} is not an integer"))?;
    if v < low || v > high {
        return Err(format!("{v} is outside {low}..{high}"));
    }
    Ok(v.to_string())
}

/// A decimal literal with at most `scale` fractional and `precision - scale` integer digits.
pub(super) fn decimal(t: &str, precision: u8, scale: u8) -> Result<String, String> {
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{t:?} is not a number SQL Server holds (NaN, infinity?)"
        ));
    }
    let int = int.trim_start_matches('0');
    let frac_used = frac.trim_end_matches('0');
    if frac_used.len() > scale as usize {
        return Err(format!("{t} has more than {scale} digits after the point"));
    }
    if int.len() > (precision - scale) as usize {
        return Err(format!(
            "{t} has more than {} digits before the point",
            precision - scale
        ));
    }
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac_used.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac_used}")
    };
    Ok(if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    })
}

/// Whether decimal text `d` (at most 4 fractional digits) lies within `[low, high]`, given in
/// ten-thousandths.
fn in_range(d: &str, low: i128, high: i128) -> Result<(), String> {
    let (neg, digits) = match d.strip_prefix('-') {
        Some(x) => (true, x),
        None => (false, d),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<4}");
    let v: i128 = format!("{int}{frac}")
        .parse()
        .map_err(|_| format!("{d} is not a number"))?;
    let v = if neg { -v } else { v };
    if v < low || v > high {
        return Err(format!("{d} is outside the type's range"));
    }
    Ok(())
}

pub(super) fn float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("{f} is not a number SQL Server holds"));
    }
    // The shortest text that reads back as the same double; an f32 widened exactly reads back
    // as the same single.
    Ok(format!("{f:e}"))
}

fn date(t: &str) -> Result<NaiveDate, String> {
    if t.len() != 10 {
        return Err(format!(
            "{t:?} is not a date SQL Server holds (years 1 to 9999)"
        ));
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| format!("{t:?} is not a date"))
}

fn timestamp(t: &str) -> Result<NaiveDateTime, String> {
    if t.len() < 19 || t.as_bytes().get(4) != Some(&b'-') || t.ends_with(" BC") {
        return Err(format!(
            "{t:?} is not a date and time SQL Server holds (years 1 to 9999)"
        ));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| format!("{t:?} is not a date and time"))
}

/// The fraction of a second fits `scale` digits.
fn fraction_fits(nanos: u32, scale: u8) -> Result<(), String> {
    let unit = 10u32.pow(9 - u32::from(scale.min(9)));
    if !nanos.is_multiple_of(unit) {
        return Err(format!(
            "the value has more fractional digits than the column's scale {scale}"
        ));
    }
    Ok(())
}

/// `N'...'` with quotes doubled.
pub(super) fn national(t: &str) -> String {
    format!("N'{}'", t.replace('\'', "''"))
}

pub(super) fn hex_literal(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("0x");
    for x in b {
        s.push_str(&format!("{x:02X}"));
    }
    s
}

pub(super) fn unhex(h: &str) -> Result<Vec<u8>, String> {
    if !h.len().is_multiple_of(2) {
        return Err("odd hex digits".into());
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| "not hex".to_string()))
        .collect()
}

fn bytea(t: &str) -> Result<Vec<u8>, String> {
    unhex(t.strip_prefix("\\x").ok_or("bytea not in hex form")?)
}

/// The SRID and plain WKB of extended WKB (the inverse of `convert::value::ewkb`).
pub fn from_ewkb(e: &[u8]) -> Result<(u32, Vec<u8>), String> {
    const SRID_FLAG: u32 = 0x2000_0000;
    let bad = || "not extended WKB".to_string();
    let (&order, rest) = e.split_first().ok_or_else(bad)?;
    let (ty, body) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let read = |b: [u8; 4]| match order {
        0 => Ok(u32::from_be_bytes(b)),
        1 => Ok(u32::from_le_bytes(b)),
        _ => Err(bad()),
    };
    let ty = read(*ty)?;
    if ty & SRID_FLAG == 0 {
        return Ok((0, e.to_vec()));
    }
    let (srid, body) = body.split_first_chunk::<4>().ok_or_else(bad)?;
    let srid = read(*srid)?;
    let mut wkb = vec![order];
    let plain = ty & !SRID_FLAG;
    match order {
        0 => wkb.extend_from_slice(&plain.to_be_bytes()),
        _ => wkb.extend_from_slice(&plain.to_le_bytes()),
    }
    wkb.extend_from_slice(body);
    Ok((srid, wkb))
}

/// A hierarchyid path of an ltree (the inverse of `convert::value::ltree_of_path`).
pub fn path_of_ltree(l: &str) -> Result<String, String> {
    if l.is_empty() {
        return Ok("/".into());
    }
    let mut out = String::from("/");
    for label in l.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'_' || b == b'n');
        if !ok {
            return Err(format!(
                "ltree label {label:?} is not one a hierarchyid path gave"
            ));
        }
        out.push_str(&label.replace('_', ".").replace('n', "-"));
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, max_length: i16, precision: u8, scale: u8) -> SourceType {
        SourceType {
            name: name.into(),
            max_length,
            precision,
            scale,
        }
    }

    fn col(kind: TargetKind) -> ColumnPlan {
        ColumnPlan::plain(kind)
    }

    fn lit(name: &str, max_length: i16, p: u8, s: u8, v: &str) -> Result<String, String> {
        literal(&col(TargetKind::Text), &ty(name, max_length, p, s), Some(v))
    }

    #[test]
    fn values_go_back_exactly_or_are_refused() {
        assert_eq!(lit("bit", 1, 1, 0, "t").unwrap(), "1");
        assert_eq!(lit("tinyint", 1, 3, 0, "255").unwrap(), "255");
        assert!(lit("tinyint", 1, 3, 0, "-1").is_err());
        assert!(lit("int", 4, 10, 0, "2147483648").is_err());
        assert_eq!(lit("decimal", 9, 10, 2, "-0012.50").unwrap(), "-12.5");
        assert!(lit("decimal", 9, 10, 2, "1.005").is_err());
        assert!(lit("decimal", 9, 4, 2, "123.4").is_err());
        assert!(lit("decimal", 9, 10, 2, "NaN").is_err());
        assert_eq!(
            lit("money", 8, 19, 4, "922337203685477.5807").unwrap(),
            "922337203685477.5807"
        );
        assert!(lit("smallmoney", 4, 10, 4, "214748.3648").is_err());
        let real = lit("real", 4, 24, 0, "1.1").unwrap();
        assert_eq!(real.parse::<f64>().unwrap() as f32, 1.1f32);
        assert!(lit("float", 8, 53, 0, "Infinity").is_err());
        assert_eq!(lit("date", 3, 10, 0, "2024-02-29").unwrap(), "'2024-02-29'");
        assert!(lit("date", 3, 10, 0, "0044-03-15 BC").is_err());
        assert!(lit("date", 3, 10, 0, "12024-01-01").is_err());
        assert_eq!(
            lit("datetime2", 8, 27, 3, "2024-01-02 03:04:05.123").unwrap(),
            "'2024-01-02T03:04:05.123000'"
        );
        assert!(lit("datetime2", 8, 27, 3, "2024-01-02 03:04:05.1234").is_err());
        assert!(lit("time", 5, 8, 0, "10:00:00.5").is_err());
        // datetime: a value the forward conversion gave goes back; another is refused.
        assert_eq!(
            lit("datetime", 8, 23, 3, "1996-07-04 10:05:00.006667").unwrap(),
            "'1996-07-04T10:05:00.006'"
        );
        assert!(lit("datetime", 8, 23, 3, "1996-07-04 10:05:00.0005").is_err());
        assert!(lit("datetime", 8, 23, 3, "1700-01-01 00:00:00").is_err());
        assert!(lit("smalldatetime", 4, 16, 0, "2024-01-01 10:00:30").is_err());
        assert_eq!(
            lit("datetimeoffset", 10, 34, 7, "2024-01-01 10:00:00.5+00").unwrap(),
            "'2024-01-01T10:00:00.500000+00:00'"
        );
        assert_eq!(lit("varchar", 4, 0, 0, "it's").unwrap(), "N'it''s'");
        assert!(lit("varchar", 3, 0, 0, "four").is_err());
        assert!(lit("varchar", 10, 0, 0, "€ ok").is_ok());
        assert!(lit("varchar", 10, 0, 0, "☃").unwrap_err().contains("1252"));
        assert!(
            lit("nvarchar", 4, 0, 0, "😀😀").is_err(),
            "4 UTF-16 units in nvarchar(2)"
        );
        assert_eq!(lit("varbinary", 2, 0, 0, "\\x0aff").unwrap(), "0x0AFF");
        assert!(lit("varbinary", 1, 0, 0, "\\x0aff").is_err());
        assert_eq!(
            literal(&col(TargetKind::Text), &ty("int", 4, 10, 0), None).unwrap(),
            "NULL"
        );
    }

    #[test]
    fn ltree_and_ewkb_invert_their_forward_conversions() {
        for path in ["/", "/1/", "/1/2.5/", "/-1/7.-2/"] {
            let l = crate::convert::value::ltree_of_path(path).unwrap();
            assert_eq!(path_of_ltree(&l).unwrap(), path);
        }
        let mut read = vec![0, 0, 0x10, 0xe6, 1, 1, 0, 0, 0];
        read.extend(1.5f64.to_le_bytes());
        read.extend(2.5f64.to_le_bytes());
        let ewkb = crate::convert::value::ewkb(&read).unwrap();
        let (srid, wkb) = from_ewkb(&ewkb).unwrap();
        assert_eq!((srid, wkb.as_slice()), (4326, &read[4..]));
        let hex: String = ewkb.iter().map(|b| format!("{b:02X}")).collect();
        let mut g = col(TargetKind::Geography);
        g.spatial = true;
        assert_eq!(
            literal(&g, &ty("geography", -1, 0, 0), Some(&hex)).unwrap(),
            format!("geography::STGeomFromWKB(0x{}, 4326)", hex_of(&read[4..]))
        );
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }
}
