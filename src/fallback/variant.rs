//! A sql_variant kept as jsonb (`{"type": base type, "value": v}`, see
//! `convert::value::variant_to`) back into a T-SQL `sql_variant` of that base type.
//!
//! Contract: the value is cast to its base type, then to sql_variant, so SQL Server records the
//! same base type and value (`SQL_VARIANT_PROPERTY(c, 'BaseType')`). What jsonb does not carry
//! is derived from the value: a decimal's scale from its digits (precision 38), a string's or
//! binary's length from its own, a time's scale from its fraction. A value that is not of its
//! base type, or a base type the fallback cannot write, is refused with why (its table stops).

use super::inverse;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The jsonb as PostgreSQL writes it; `value` kept as its exact text (a decimal's digits).
#[derive(Deserialize)]
struct Variant<'a> {
    #[serde(rename = "type")]
    base: String,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// The T-SQL expression of `jsonb` (PostgreSQL's text of it) as a sql_variant.
pub fn literal(jsonb: &str) -> Result<String, String> {
    let v: Variant = serde_json::from_str(jsonb).map_err(|_| {
        "the jsonb is not a sql_variant's {\"type\": base type, \"value\": value}".to_string()
    })?;
    let raw = v.value.get();
    let base = v.base.as_str();
    let string = || -> Result<String, String> {
        serde_json::from_str::<String>(raw).map_err(|_| {
            format!("a sql_variant of base type {base} needs a string value, not {raw}")
        })
    };
    let number = || -> Result<&str, String> {
        (!raw.starts_with('"') && raw.parse::<f64>().is_ok())
            .then_some(raw)
            .ok_or_else(|| format!("a sql_variant of base type {base} needs a number, not {raw}"))
    };
    let (value, ty) = match base {
        "bit" => (
            match raw {
                "true" => "1".to_string(),
                "false" => "0".to_string(),
                _ => {
                    return Err(format!(
                        "a sql_variant of base type bit is true or false, not {raw}"
                    ))
                }
            },
            "bit".to_string(),
        ),
        "tinyint" => (inverse::integer(number()?, 0, 255)?, base.to_string()),
        "smallint" => (
            inverse::integer(number()?, i16::MIN.into(), i16::MAX.into())?,
            base.to_string(),
        ),
        "int" => (
            inverse::integer(number()?, i32::MIN.into(), i32::MAX.into())?,
            base.to_string(),
        ),
        "bigint" => (
            inverse::integer(number()?, i64::MIN.into(), i64::MAX.into())?,
            base.to_string(),
        ),
        "decimal" | "numeric" | "money" | "smallmoney" => {
            let t = number()?;
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len());
            let scale = u8::try_from(scale).unwrap_or(u8::MAX);
            let (precision, scale, ty) = match base {
                "money" | "smallmoney" => (19, 4, base.to_string()),
                _ => (38, scale, format!("{base}(38,{scale})")),
            };
            if scale > 38 {
                return Err(format!("{t} has more than 38 digits after the point"));
            }
            (inverse::decimal(t, precision, scale)?, ty)
        }
        "float" | "real" => {
            let f: f64 = number()?
                .parse()
                .map_err(|_| format!("{raw} is not a number"))?;
            (inverse::float(f)?, base.to_string())
        }
        "char" | "varchar" | "nchar" | "nvarchar" => {
            let s = string()?;
            let national = base.starts_with('n');
            let (len, limit) = match national {
                true => (s.encode_utf16().count(), 4000),
                false => (s.len(), 8000),
            };
            if len > limit {
                return Err(format!(
                    "a {base} of {len} characters is longer than a sql_variant holds"
                ));
            }
            if !national && encoding_rs::WINDOWS_1252.encode(&s).2 {
                return Err(format!(
                    "a character code page 1252 lacks cannot be held by a {base} sql_variant"
                ));
            }
            let lit = match national {
                true => inverse::national(&s),
                false => format!("'{}'", s.replace('\'', "''")),
            };
            (lit, format!("{base}({})", len.max(1)))
        }
        "binary" | "varbinary" => {
            let s = string()?;
            let b = s
                .strip_prefix("0x")
                .ok_or_else(|| format!("a {base} sql_variant is 0x and hex digits"))
                .and_then(|h| {
                    inverse::unhex(h).map_err(|e| format!("a {base} sql_variant: {e}"))
                })?;
            if b.len() > 8000 {
                return Err(format!(
                    "{} bytes are more than a sql_variant holds",
                    b.len()
                ));
            }
            (
                inverse::hex_literal(&b),
                format!("{base}({})", b.len().max(1)),
            )
        }
        "uniqueidentifier" => {
            let s = string()?;
            let u = uuid::Uuid::parse_str(&s)
                .map_err(|_| format!("{s:?} is not a uniqueidentifier"))?;
            (format!("'{}'", u.hyphenated()), base.to_string())
        }
        "date" | "time" | "datetime" | "smalldatetime" | "datetime2" | "datetimeoffset" => {
            let s = string()?;
            let digits = s
                .split_once('.')
                .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
            let parsed = match base {
                "date" => NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok(),
                "time" => NaiveTime::parse_from_str(&s, "%H:%M:%S%.f").is_ok(),
                "datetimeoffset" => {
                    DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f %:z").is_ok()
                }
                _ => NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f").is_ok(),
            };
            if !parsed || digits > 7 {
                return Err(format!("{s:?} is not a {base} SQL Server reads"));
            }
            let ty = match base {
                "time" | "datetime2" | "datetimeoffset" => format!("{base}({digits})"),
                _ => base.to_string(),
            };
            (inverse::national(&s), ty)
        }
        other => {
            return Err(format!(
                "the fallback cannot write a sql_variant of base type {other}"
            ))
        }
    };
    Ok(format!("CAST(CAST({value} AS {ty}) AS sql_variant)"))
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn each_base_type_goes_back_as_itself_or_is_refused() {
        let ok = [
            (r#"{"type": "int", "value": 42}"#, "CAST(CAST(42 AS int) AS sql_variant)"),
            (r#"{"type": "bit", "value": true}"#, "CAST(CAST(1 AS bit) AS sql_variant)"),
            (
                r#"{"type": "decimal", "value": -12.50}"#,
                "CAST(CAST(-12.5 AS decimal(38,2)) AS sql_variant)",
            ),
            (r#"{"type": "money", "value": 1.2345}"#, "CAST(CAST(1.2345 AS money) AS sql_variant)"),
            (r#"{"type": "float", "value": 0.1}"#, "CAST(CAST(1e-1 AS float) AS sql_variant)"),
            (
                r#"{"type": "nvarchar", "value": "it's ☃"}"#,
                "CAST(CAST(N'it''s ☃' AS nvarchar(6)) AS sql_variant)",
            ),
            (r#"{"type": "char", "value": "ab  "}"#, "CAST(CAST('ab  ' AS char(4)) AS sql_variant)"),
            (
                r#"{"type": "varbinary", "value": "0x00FF"}"#,
                "CAST(CAST(0x00FF AS varbinary(2)) AS sql_variant)",
            ),
            (
                r#"{"type": "datetime", "value": "2024-02-29 13:14:15.997"}"#,
                "CAST(CAST(N'2024-02-29 13:14:15.997' AS datetime) AS sql_variant)",
            ),
            (
                r#"{"type": "datetime2", "value": "2024-02-29 13:14:15.1234567"}"#,
                "CAST(CAST(N'2024-02-29 13:14:15.1234567' AS datetime2(7)) AS sql_variant)",
            ),
            (
                r#"{"type": "datetimeoffset", "value": "2024-02-29 13:14:15.5 -05:30"}"#,
                "CAST(CAST(N'2024-02-29 13:14:15.5 -05:30' AS datetimeoffset(1)) AS sql_variant)",
            ),
            (
                r#"{"type": "uniqueidentifier", "value": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}"#,
                "CAST(CAST('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' AS uniqueidentifier) AS sql_variant)",
            ),
        ];
        for (jsonb, want) in ok {
            assert_eq!(literal(jsonb).as_deref(), Ok(want), "{jsonb}");
        }
        let refused = [
            (r#"{"type": "tinyint", "value": 300}"#, "outside"),
            (r#"{"type": "int", "value": "42"}"#, "needs a number"),
            (r#"{"type": "bit", "value": 1}"#, "true or false"),
            (r#"{"type": "date", "value": "29/02/2024"}"#, "not a date"),
            (r#"{"type": "varchar", "value": "☃"}"#, "code page 1252"),
            (r#"{"type": "xml", "value": "<a/>"}"#, "base type xml"),
            (r#"{"value": 1}"#, "not a sql_variant"),
            (r#"[1, 2]"#, "not a sql_variant"),
        ];
        for (jsonb, why) in refused {
            let e = literal(jsonb).expect_err(jsonb);
            assert!(e.contains(why), "{jsonb}: {e}");
        }
    }
}
