//! The PostgreSQL type a column becomes: what the configuration's type overrides name, what the
//! conversion plans and the COPY encoding follow.

use serde::{Deserialize, Serialize};

/// The PostgreSQL type a column becomes; decides the COPY encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    /// boolean
    Bool,
    /// smallint
    Int2,
    /// integer
    Int4,
    /// bigint
    Int8,
    /// real
    Float4,
    /// double precision
    Float8,
    /// numeric(p,s), or unconstrained numeric
    Numeric(Option<(u8, u8)>),
    /// text
    Text,
    /// varchar(n)
    Varchar(u32),
    /// bytea
    Bytea,
    /// uuid
    Uuid,
    /// date
    Date,
    /// time (microseconds)
    Time,
    /// timestamp (microseconds)
    Timestamp,
    /// timestamptz (microseconds)
    TimestampTz,
    /// xml
    Xml,
    /// ltree (the extension's type; a hierarchyid's path, `/1/3/` as `1.3`)
    Ltree,
    /// PostGIS geometry (values as extended WKB)
    Geometry,
    /// PostGIS geography (values as extended WKB)
    Geography,
    /// jsonb; a sql_variant as `{"type": base type, "value": its value}`
    Jsonb,
}

impl TargetKind {
    /// The type as PostgreSQL DDL spells it.
    pub fn ddl(&self) -> String {
        match self {
            TargetKind::Bool => "boolean".into(),
            TargetKind::Int2 => "smallint".into(),
            TargetKind::Int4 => "integer".into(),
            TargetKind::Int8 => "bigint".into(),
            TargetKind::Float4 => "real".into(),
            TargetKind::Float8 => "double precision".into(),
            TargetKind::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            TargetKind::Numeric(None) => "numeric".into(),
            TargetKind::Text => "text".into(),
            TargetKind::Varchar(n) => format!("character varying({n})"),
            TargetKind::Bytea => "bytea".into(),
            TargetKind::Uuid => "uuid".into(),
            TargetKind::Date => "date".into(),
            TargetKind::Time => "time without time zone".into(),
            TargetKind::Timestamp => "timestamp without time zone".into(),
            TargetKind::TimestampTz => "timestamp with time zone".into(),
            TargetKind::Xml => "xml".into(),
            TargetKind::Ltree => "ltree".into(),
            TargetKind::Geometry => "geometry".into(),
            TargetKind::Geography => "geography".into(),
            TargetKind::Jsonb => "jsonb".into(),
        }
    }

    /// Parses a type override (`"text"`, `"varchar(200)"`, `"numeric(20,4)"`, `"bytea"`...);
    /// the error lists what is accepted.
    pub fn parse(s: &str) -> Result<TargetKind, String> {
        let t = s.trim().to_lowercase();
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        let args = |prefix: &str| -> Option<Vec<u32>> {
            let rest = t.strip_prefix(prefix)?.trim();
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            inner.split(',').map(|x| x.trim().parse().ok()).collect()
        };
        Ok(match t.as_str() {
            "boolean" | "bool" => TargetKind::Bool,
            "smallint" | "int2" => TargetKind::Int2,
            "integer" | "int" | "int4" => TargetKind::Int4,
            "bigint" | "int8" => TargetKind::Int8,
            "real" | "float4" => TargetKind::Float4,
            "double precision" | "float8" => TargetKind::Float8,
            "numeric" | "decimal" => TargetKind::Numeric(None),
            "text" => TargetKind::Text,
            "bytea" => TargetKind::Bytea,
            "uuid" => TargetKind::Uuid,
            "date" => TargetKind::Date,
            "time" | "time without time zone" => TargetKind::Time,
            "timestamp" | "timestamp without time zone" => TargetKind::Timestamp,
            "timestamptz" | "timestamp with time zone" => TargetKind::TimestampTz,
            "xml" => TargetKind::Xml,
            "ltree" => TargetKind::Ltree,
            "geometry" => TargetKind::Geometry,
            "geography" => TargetKind::Geography,
            "jsonb" => TargetKind::Jsonb,
            _ => {
                if let Some(a) = args("numeric").or_else(|| args("decimal")) {
                    match a.as_slice() {
                        [p, s] if (1..=1000).contains(p) && s <= p => {
                            TargetKind::Numeric(Some((*p as u8, *s as u8)))
                        }
                        [p] if (1..=1000).contains(p) => TargetKind::Numeric(Some((*p as u8, 0))),
                        _ => {
                            return Err(format!("'{s}': numeric(p,s) needs 1 <= p and 0 <= s <= p"))
                        }
                    }
                } else if let Some(a) = args("varchar").or_else(|| args("character varying")) {
                    match a.as_slice() {
                        [n] if *n >= 1 && *n <= 10_485_760 => TargetKind::Varchar(*n),
                        _ => return Err(format!("'{s}': varchar(n) needs 1 <= n <= 10485760")),
                    }
                } else {
                    return Err(format!(
                        "'{s}' is not a supported target type; use one of boolean, smallint, integer, bigint, real, \
                         double precision, numeric[(p,s)], text, varchar(n), bytea, uuid, date, time, timestamp, \
                         timestamptz, xml, ltree, geometry, geography, jsonb"
                    ));
                }
            }
        })
    }

    /// Holds text (NUL policy applies).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            TargetKind::Text | TargetKind::Varchar(_) | TargetKind::Xml
        )
    }
}
