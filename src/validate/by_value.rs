//! Query results compared by value, for what has no key (a view's rows): each cell reduced to
//! one canonical text on both sides, each row to a hash, the two sides to a multiset.
//!
//! Contract: two cells are equal when they hold the same value whatever type each side gave it:
//! numbers by their decimal value (`5`, `5.00` and a bit's `1` against a boolean's `true`),
//! floating-point numbers by their double, times to the microsecond (offsets by their instant),
//! text and bytes exactly. NULL equals only NULL.

use crate::model::render_decimal;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use tiberius::{ColumnData, FromSql};
use tokio_postgres::types::Type;

const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The canonical text of a SQL Server cell; `None` for NULL.
pub fn source_cell(cell: &ColumnData<'static>) -> Option<String> {
    use ColumnData as C;
    Some(match cell {
        C::Bit(b) => (if (*b)? { "1" } else { "0" }).to_string(),
        C::U8(v) => v.as_ref()?.to_string(),
        C::I16(v) => v.as_ref()?.to_string(),
        C::I32(v) => v.as_ref()?.to_string(),
        C::I64(v) => v.as_ref()?.to_string(),
        C::F32(v) => float(f64::from((*v)?)),
        C::F64(v) => float((*v)?),
        C::Numeric(n) => {
            let n = n.as_ref()?;
            number(&render_decimal(n.value(), n.scale()))
        }
        // Text compares as SQL Server's `=` does: trailing spaces do not count (a char(n)'s
        // padding, which PostgreSQL's character(n)::text drops).
        C::String(s) => s.as_ref()?.trim_end_matches(' ').to_string(),
        C::Xml(x) => x.as_ref()?.to_string(),
        C::Binary(b) => hex(b.as_ref()?),
        C::Guid(g) => g.as_ref()?.hyphenated().to_string(),
        C::Date(_) => NaiveDate::from_sql(cell).ok()??.to_string(),
        C::Time(_) => NaiveTime::from_sql(cell)
            .ok()??
            .format("%H:%M:%S%.6f")
            .to_string(),
        C::DateTimeOffset(_) => DateTime::<FixedOffset>::from_sql(cell)
            .ok()??
            .with_timezone(&Utc)
            .format(TIMESTAMP)
            .to_string(),
        C::DateTime(_) | C::SmallDateTime(_) | C::DateTime2(_) => NaiveDateTime::from_sql(cell)
            .ok()??
            .format(TIMESTAMP)
            .to_string(),
    })
}

/// The canonical text of a PostgreSQL value given as its text form (`value::text`, with the
/// session's time zone UTC and DateStyle ISO); `None` for NULL.
pub fn target_cell(ty: &Type, text: Option<&str>) -> Option<String> {
    let t = text?;
    Some(match *ty {
        Type::BOOL => (if t == "t" || t == "true" { "1" } else { "0" }).to_string(),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC | Type::OID => number(t),
        Type::FLOAT4 => t
            .parse::<f32>()
            .map_or_else(|_| t.to_string(), |f| float(f64::from(f))),
        Type::FLOAT8 => t.parse::<f64>().map_or_else(|_| t.to_string(), float),
        Type::BYTEA => t.trim_start_matches("\\x").to_lowercase(),
        Type::UUID => t.to_lowercase(),
        Type::TIME => NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
            .map_or_else(|_| t.to_string(), |v| v.format("%H:%M:%S%.6f").to_string()),
        Type::TIMESTAMP => NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
            .map_or_else(|_| t.to_string(), |v| v.format(TIMESTAMP).to_string()),
        Type::TIMESTAMPTZ => {
            DateTime::parse_from_str(&format!("{t}:00"), "%Y-%m-%d %H:%M:%S%.f%:z")
                .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
                .map_or_else(
                    |_| t.to_string(),
                    |v| v.with_timezone(&Utc).format(TIMESTAMP).to_string(),
                )
        }
        _ => t.trim_end_matches(' ').to_string(),
    })
}

/// A decimal number's canonical text: no sign on zero, no leading zeros, no trailing
/// fractional zeros (`-0.50` -> `-0.5`, `007` -> `7`, `5.00` -> `5`).
pub fn number(s: &str) -> String {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return s.to_string(); // NaN and other non-numbers compare as written
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

fn float(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e15 {
        number(&format!("{f:.0}"))
    } else {
        format!("{f:?}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Rows as a multiset: each source row adds one, each target row takes one away.
#[derive(Debug, Default)]
pub struct RowMultiset {
    counts: HashMap<u64, i64>,
    /// Rows seen on the source side.
    pub source_rows: i64,
    /// Rows seen on the target side.
    pub target_rows: i64,
}

impl RowMultiset {
    /// Adds a source row.
    pub fn source(&mut self, row: &[Option<String>]) {
        self.source_rows += 1;
        *self.counts.entry(row_hash(row)).or_insert(0) += 1;
    }

    /// Adds a target row.
    pub fn target(&mut self, row: &[Option<String>]) {
        self.target_rows += 1;
        *self.counts.entry(row_hash(row)).or_insert(0) -= 1;
    }

    /// (rows only the source has, rows only the target has), counted with repetition.
    pub fn differences(&self) -> (i64, i64) {
        self.counts.values().fold(
            (0, 0),
            |(s, t), &c| {
                if c > 0 {
                    (s + c, t)
                } else {
                    (s, t - c)
                }
            },
        )
    }
}

fn row_hash(row: &[Option<String>]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row.len().hash(&mut h);
    for cell in row {
        cell.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn numbers_compare_by_value_across_types() {
        assert_eq!(number("5.00"), "5");
        assert_eq!(number("-0.50"), "-0.5");
        assert_eq!(number("007"), "7");
        assert_eq!(number("-0.000"), "0");
        assert_eq!(number("NaN"), "NaN");
        let bit = source_cell(&ColumnData::Bit(Some(true)));
        assert_eq!(bit, target_cell(&Type::BOOL, Some("t")));
        assert_eq!(bit, target_cell(&Type::BOOL, Some("true")));
        assert_eq!(bit, target_cell(&Type::INT4, Some("1")));
        let dec = tiberius::numeric::Numeric::new_with_scale(1250, 2);
        assert_eq!(
            source_cell(&ColumnData::Numeric(Some(dec))),
            target_cell(&Type::NUMERIC, Some("12.5000"))
        );
        assert_eq!(
            source_cell(&ColumnData::F32(Some(1.1))),
            target_cell(&Type::FLOAT4, Some("1.1"))
        );
        assert_eq!(
            source_cell(&ColumnData::F64(Some(3.0))),
            target_cell(&Type::INT8, Some("3"))
        );
        assert_ne!(
            source_cell(&ColumnData::I32(Some(3))),
            target_cell(&Type::TEXT, Some(" 3"))
        );
        // Trailing spaces do not count, as in SQL Server's `=` (a char(n)'s padding).
        assert_eq!(
            source_cell(&ColumnData::String(Some(Cow::Borrowed("ab   ")))),
            target_cell(&Type::BPCHAR, Some("ab"))
        );
    }

    #[test]
    fn times_text_and_nulls() {
        let ts = NaiveDate::from_ymd_opt(1996, 7, 4)
            .unwrap()
            .and_hms_milli_opt(10, 5, 0, 120)
            .unwrap();
        let cell = tiberius::IntoSql::into_sql(ts);
        assert_eq!(
            source_cell(&cell),
            target_cell(&Type::TIMESTAMP, Some("1996-07-04 10:05:00.12"))
        );
        assert_eq!(
            target_cell(&Type::TIMESTAMPTZ, Some("1996-07-04 10:05:00+02")),
            Some("1996-07-04 08:05:00.000000".into())
        );
        assert_eq!(
            source_cell(&ColumnData::String(Some(Cow::Borrowed("Côte")))),
            target_cell(&Type::VARCHAR, Some("Côte"))
        );
        assert_eq!(source_cell(&ColumnData::I32(None)), None);
        assert_eq!(
            source_cell(&ColumnData::Binary(Some(Cow::Borrowed(&[10, 255])))),
            target_cell(&Type::BYTEA, Some("\\x0aff"))
        );
    }

    #[test]
    fn the_multiset_counts_rows_on_each_side() {
        let a = vec![Some("1".to_string()), None];
        let b = vec![Some("1".to_string()), Some("".into())];
        let mut m = RowMultiset::default();
        m.source(&a);
        m.source(&a);
        m.target(&a);
        m.target(&b);
        assert_eq!(m.differences(), (1, 1));
        m.target(&a);
        m.source(&b);
        assert_eq!(m.differences(), (0, 0));
        assert_eq!((m.source_rows, m.target_rows), (3, 3));
    }
}
