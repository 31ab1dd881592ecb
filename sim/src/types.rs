//! The declared T-SQL types the simulator keeps exact: their spelling, their `sys.types` facts,
//! the PostgreSQL storage that holds every value of the type, and their TDS TYPE_INFO.
//!
//! Storage contract: a value of a column of type `t` is stored in `t.pg_storage()` and comes back
//! unchanged. Where PostgreSQL has no exact type (100 ns temporal values) the value is stored as
//! canonical text that sorts like the value (see `value.rs`).

use std::fmt;

/// The collation every string column reports: SQL_Latin1_General_CP1_CI_AS (LCID 0x0409,
/// case-insensitive, accent-sensitive, sort id 52).
pub const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

/// Length of a string or binary type: a count, or `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    /// A declared length (bytes for char/varchar/binary, characters for nchar/nvarchar).
    N(u16),
    /// `(max)`: up to 2 GB, sent as PLP.
    Max,
}

/// A declared T-SQL type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TsqlType {
    Bit,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    /// decimal or numeric (`numeric` = true keeps the spelling).
    Decimal {
        precision: u8,
        scale: u8,
        numeric: bool,
    },
    Money,
    SmallMoney,
    Real,
    Float,
    Date,
    Time(u8),
    DateTime,
    SmallDateTime,
    DateTime2(u8),
    DateTimeOffset(u8),
    Char(u16),
    VarChar(Len),
    NChar(u16),
    NVarChar(Len),
    Text,
    NText,
    Binary(u16),
    VarBinary(Len),
    Image,
    UniqueIdentifier,
    Xml,
    RowVersion,
    SqlVariant,
    HierarchyId,
    Geography,
    Geometry,
}

/// A type name or its arguments were not understood.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TypeError(pub String);

fn arg_u32(args: &[String], i: usize, default: u32, name: &str) -> Result<u32, TypeError> {
    match args.get(i) {
        None => Ok(default),
        Some(a) => a
            .trim()
            .parse::<u32>()
            .map_err(|_| TypeError(format!("invalid argument '{a}' for type {name}"))),
    }
}

fn len_arg(args: &[String], default: u16, limit: u32, name: &str) -> Result<Len, TypeError> {
    match args.first() {
        None => Ok(Len::N(default)),
        Some(a) if a.trim().eq_ignore_ascii_case("max") => Ok(Len::Max),
        Some(_) => {
            let n = arg_u32(args, 0, default as u32, name)?;
            if n == 0 || n > limit {
                return Err(TypeError(format!(
                    "The size ({n}) given to the type '{name}' exceeds the maximum allowed ({limit})."
                )));
            }
            Ok(Len::N(n as u16))
        }
    }
}

fn fixed_len(args: &[String], limit: u32, name: &str) -> Result<u16, TypeError> {
    match len_arg(args, 1, limit, name)? {
        Len::N(n) => Ok(n),
        Len::Max => Err(TypeError(format!("'max' is not allowed for type {name}"))),
    }
}

fn frac(args: &[String], name: &str) -> Result<u8, TypeError> {
    let n = arg_u32(args, 0, 7, name)?;
    if n > 7 {
        return Err(TypeError(format!(
            "Specified scale {n} is invalid. '{name}' datatype must have scale between 0 and 7."
        )));
    }
    Ok(n as u8)
}

impl TsqlType {
    /// Parses a type as written in T-SQL: `nvarchar(50)`, `DECIMAL(38, 0)`, `[int]`, `float(24)`.
    pub fn parse(text: &str) -> Result<TsqlType, TypeError> {
        let text = text.trim();
        let (name, args) = match text.find('(') {
            Some(p) => {
                let inner = text[p + 1..]
                    .trim_end()
                    .strip_suffix(')')
                    .ok_or_else(|| TypeError(format!("unbalanced parenthesis in type {text}")))?;
                let args = inner
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>();
                (text[..p].trim(), args)
            }
            None => (text, Vec::new()),
        };
        let name = name.trim_matches(|c| c == '[' || c == ']' || c == '"');
        let name = name
            .rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_matches(|c| c == '[' || c == ']');
        Self::from_parts(name, &args)
    }

    /// Builds a type from its name and arguments.
    pub fn from_parts(name: &str, args: &[String]) -> Result<TsqlType, TypeError> {
        let lower = name.to_ascii_lowercase();
        let t = match lower.as_str() {
            "bit" => TsqlType::Bit,
            "tinyint" => TsqlType::TinyInt,
            "smallint" => TsqlType::SmallInt,
            "int" | "integer" => TsqlType::Int,
            "bigint" => TsqlType::BigInt,
            "decimal" | "dec" | "numeric" => {
                let p = arg_u32(args, 0, 18, name)?;
                let s = arg_u32(args, 1, 0, name)?;
                if !(1..=38).contains(&p) {
                    return Err(TypeError(format!(
                        "Column or parameter has an invalid precision value {p} (1 to 38)."
                    )));
                }
                if s > p {
                    return Err(TypeError(format!(
                        "The scale ({s}) must be less than or equal to the precision ({p})."
                    )));
                }
                TsqlType::Decimal {
                    precision: p as u8,
                    scale: s as u8,
                    numeric: lower == "numeric",
                }
            }
            "money" => TsqlType::Money,
            "smallmoney" => TsqlType::SmallMoney,
            "real" => TsqlType::Real,
            "float" | "double precision" => {
                if arg_u32(args, 0, 53, name)? <= 24 {
                    TsqlType::Real
                } else {
                    TsqlType::Float
                }
            }
            "date" => TsqlType::Date,
            "time" => TsqlType::Time(frac(args, name)?),
            "datetime" => TsqlType::DateTime,
            "smalldatetime" => TsqlType::SmallDateTime,
            "datetime2" => TsqlType::DateTime2(frac(args, name)?),
            "datetimeoffset" => TsqlType::DateTimeOffset(frac(args, name)?),
            "char" | "character" => TsqlType::Char(fixed_len(args, 8000, name)?),
            "varchar" | "character varying" => TsqlType::VarChar(len_arg(args, 1, 8000, name)?),
            "nchar" => TsqlType::NChar(fixed_len(args, 4000, name)?),
            "nvarchar" | "sysname" => {
                if lower == "sysname" {
                    TsqlType::NVarChar(Len::N(128))
                } else {
                    TsqlType::NVarChar(len_arg(args, 1, 4000, name)?)
                }
            }
            "text" => TsqlType::Text,
            "ntext" => TsqlType::NText,
            "binary" => TsqlType::Binary(fixed_len(args, 8000, name)?),
            "varbinary" => TsqlType::VarBinary(len_arg(args, 1, 8000, name)?),
            "image" => TsqlType::Image,
            "uniqueidentifier" => TsqlType::UniqueIdentifier,
            "xml" => TsqlType::Xml,
            "rowversion" | "timestamp" => TsqlType::RowVersion,
            "sql_variant" => TsqlType::SqlVariant,
            "hierarchyid" => TsqlType::HierarchyId,
            "geography" => TsqlType::Geography,
            "geometry" => TsqlType::Geometry,
            _ => {
                return Err(TypeError(format!(
                    "Column, parameter, or variable #1: Cannot find data type {name}."
                )))
            }
        };
        Ok(t)
    }

    /// The PostgreSQL column type that stores every value of this type exactly.
    pub fn pg_storage(&self) -> String {
        match self {
            TsqlType::Bit | TsqlType::TinyInt | TsqlType::SmallInt => "smallint".into(),
            TsqlType::Int => "integer".into(),
            TsqlType::BigInt | TsqlType::RowVersion => "bigint".into(),
            TsqlType::Decimal {
                precision, scale, ..
            } => format!("numeric({precision},{scale})"),
            TsqlType::Money => "numeric(19,4)".into(),
            TsqlType::SmallMoney => "numeric(10,4)".into(),
            TsqlType::Real => "real".into(),
            TsqlType::Float => "double precision".into(),
            TsqlType::Date => "date".into(),
            TsqlType::DateTime => "timestamp(3)".into(),
            TsqlType::SmallDateTime => "timestamp(0)".into(),
            TsqlType::Time(_) | TsqlType::DateTime2(_) | TsqlType::DateTimeOffset(_) => {
                "text".into()
            }
            TsqlType::Char(n) | TsqlType::NChar(n) => format!("char({n}) COLLATE _sim.ci_as"),
            TsqlType::VarChar(Len::N(n)) | TsqlType::NVarChar(Len::N(n)) => {
                format!("varchar({n}) COLLATE _sim.ci_as")
            }
            TsqlType::VarChar(Len::Max)
            | TsqlType::NVarChar(Len::Max)
            | TsqlType::Text
            | TsqlType::NText
            | TsqlType::Xml
            | TsqlType::HierarchyId => "text COLLATE _sim.ci_as".into(),
            // The base type's name and the value's text (see `_sim.variant`).
            TsqlType::SqlVariant => "_sim.variant".into(),
            TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image => "bytea".into(),
            TsqlType::Geography | TsqlType::Geometry => "bytea".into(),
            TsqlType::UniqueIdentifier => "uuid".into(),
        }
    }

    /// A CHECK expression over `col` that keeps stored values inside the T-SQL range.
    pub fn pg_check(&self, col: &str) -> Option<String> {
        match self {
            TsqlType::TinyInt => Some(format!("{col} BETWEEN 0 AND 255")),
            TsqlType::Bit => Some(format!("{col} IN (0, 1)")),
            TsqlType::Money => Some(format!(
                "{col} BETWEEN -922337203685477.5808 AND 922337203685477.5807"
            )),
            TsqlType::SmallMoney => Some(format!("{col} BETWEEN -214748.3648 AND 214748.3647")),
            TsqlType::DateTime => Some(format!("{col} >= '1753-01-01' AND {col} < '10000-01-01'")),
            TsqlType::SmallDateTime => Some(format!(
                "{col} >= '1900-01-01' AND {col} <= '2079-06-06 23:59:00'"
            )),
            _ => None,
        }
    }

    /// `sys.types.name`.
    pub fn sys_name(&self) -> &'static str {
        match self {
            TsqlType::Bit => "bit",
            TsqlType::TinyInt => "tinyint",
            TsqlType::SmallInt => "smallint",
            TsqlType::Int => "int",
            TsqlType::BigInt => "bigint",
            TsqlType::Decimal { numeric: false, .. } => "decimal",
            TsqlType::Decimal { numeric: true, .. } => "numeric",
            TsqlType::Money => "money",
            TsqlType::SmallMoney => "smallmoney",
            TsqlType::Real => "real",
            TsqlType::Float => "float",
            TsqlType::Date => "date",
            TsqlType::Time(_) => "time",
            TsqlType::DateTime => "datetime",
            TsqlType::SmallDateTime => "smalldatetime",
            TsqlType::DateTime2(_) => "datetime2",
            TsqlType::DateTimeOffset(_) => "datetimeoffset",
            TsqlType::Char(_) => "char",
            TsqlType::VarChar(_) => "varchar",
            TsqlType::NChar(_) => "nchar",
            TsqlType::NVarChar(_) => "nvarchar",
            TsqlType::Text => "text",
            TsqlType::NText => "ntext",
            TsqlType::Binary(_) => "binary",
            TsqlType::VarBinary(_) => "varbinary",
            TsqlType::Image => "image",
            TsqlType::UniqueIdentifier => "uniqueidentifier",
            TsqlType::Xml => "xml",
            TsqlType::RowVersion => "timestamp",
            TsqlType::SqlVariant => "sql_variant",
            TsqlType::HierarchyId => "hierarchyid",
            TsqlType::Geography => "geography",
            TsqlType::Geometry => "geometry",
        }
    }

    /// `sys.types.system_type_id`.
    pub fn system_type_id(&self) -> u8 {
        match self {
            TsqlType::Bit => 104,
            TsqlType::TinyInt => 48,
            TsqlType::SmallInt => 52,
            TsqlType::Int => 56,
            TsqlType::BigInt => 127,
            TsqlType::Decimal { numeric: false, .. } => 106,
            TsqlType::Decimal { numeric: true, .. } => 108,
            TsqlType::Money => 60,
            TsqlType::SmallMoney => 122,
            TsqlType::Real => 59,
            TsqlType::Float => 62,
            TsqlType::Date => 40,
            TsqlType::Time(_) => 41,
            TsqlType::DateTime => 61,
            TsqlType::SmallDateTime => 58,
            TsqlType::DateTime2(_) => 42,
            TsqlType::DateTimeOffset(_) => 43,
            TsqlType::Char(_) => 175,
            TsqlType::VarChar(_) => 167,
            TsqlType::NChar(_) => 239,
            TsqlType::NVarChar(_) => 231,
            TsqlType::Text => 35,
            TsqlType::NText => 99,
            TsqlType::Binary(_) => 173,
            TsqlType::VarBinary(_) => 165,
            TsqlType::Image => 34,
            TsqlType::UniqueIdentifier => 36,
            TsqlType::Xml => 241,
            TsqlType::RowVersion => 189,
            TsqlType::SqlVariant => 98,
            TsqlType::HierarchyId | TsqlType::Geography | TsqlType::Geometry => 240,
        }
    }

    /// `sys.types.user_type_id` (differs from the system id only for the CLR types).
    pub fn user_type_id(&self) -> i32 {
        match self {
            TsqlType::HierarchyId => 128,
            TsqlType::Geometry => 129,
            TsqlType::Geography => 130,
            t => t.system_type_id() as i32,
        }
    }

    /// `sys.columns.max_length`: bytes, -1 for (max) and xml.
    pub fn max_length(&self) -> i16 {
        match self {
            TsqlType::Bit | TsqlType::TinyInt => 1,
            TsqlType::SmallInt => 2,
            TsqlType::Int | TsqlType::Real | TsqlType::SmallMoney | TsqlType::SmallDateTime => 4,
            TsqlType::BigInt
            | TsqlType::Float
            | TsqlType::Money
            | TsqlType::DateTime
            | TsqlType::RowVersion => 8,
            TsqlType::Decimal { precision, .. } => decimal_bytes(*precision) as i16,
            TsqlType::Date => 3,
            TsqlType::Time(s) => time_bytes(*s) as i16,
            TsqlType::DateTime2(s) => time_bytes(*s) as i16 + 3,
            TsqlType::DateTimeOffset(s) => time_bytes(*s) as i16 + 5,
            TsqlType::Char(n) | TsqlType::Binary(n) => *n as i16,
            TsqlType::NChar(n) => (*n as i16) * 2,
            TsqlType::VarChar(Len::N(n)) | TsqlType::VarBinary(Len::N(n)) => *n as i16,
            TsqlType::NVarChar(Len::N(n)) => (*n as i16) * 2,
            TsqlType::VarChar(Len::Max)
            | TsqlType::NVarChar(Len::Max)
            | TsqlType::VarBinary(Len::Max) => -1,
            TsqlType::Text | TsqlType::NText | TsqlType::Image => 16,
            TsqlType::UniqueIdentifier => 16,
            TsqlType::Xml | TsqlType::Geography | TsqlType::Geometry => -1,
            TsqlType::SqlVariant => 8016,
            TsqlType::HierarchyId => 892,
        }
    }

    /// `sys.columns.precision`.
    pub fn precision(&self) -> u8 {
        match self {
            TsqlType::Bit => 1,
            TsqlType::TinyInt => 3,
            TsqlType::SmallInt => 5,
            TsqlType::Int => 10,
            TsqlType::BigInt => 19,
            TsqlType::Decimal { precision, .. } => *precision,
            TsqlType::Money => 19,
            TsqlType::SmallMoney => 10,
            TsqlType::Real => 24,
            TsqlType::Float => 53,
            TsqlType::Date => 10,
            TsqlType::Time(s) => 8 + if *s > 0 { 1 + s } else { 0 },
            TsqlType::DateTime => 23,
            TsqlType::SmallDateTime => 16,
            TsqlType::DateTime2(s) => 19 + if *s > 0 { 1 + s } else { 0 },
            TsqlType::DateTimeOffset(s) => 26 + if *s > 0 { 1 + s } else { 0 },
            _ => 0,
        }
    }

    /// `sys.columns.scale`.
    pub fn scale(&self) -> u8 {
        match self {
            TsqlType::Decimal { scale, .. } => *scale,
            TsqlType::Money | TsqlType::SmallMoney => 4,
            TsqlType::DateTime => 3,
            TsqlType::Time(s) | TsqlType::DateTime2(s) | TsqlType::DateTimeOffset(s) => *s,
            _ => 0,
        }
    }

    /// Whether values are character data (for `+` meaning concatenation, LIKE, collations).
    pub fn is_string(&self) -> bool {
        matches!(
            self,
            TsqlType::Char(_)
                | TsqlType::VarChar(_)
                | TsqlType::NChar(_)
                | TsqlType::NVarChar(_)
                | TsqlType::Text
                | TsqlType::NText
                | TsqlType::Xml
        )
    }

    /// Whether the column uses the collation (string columns stored as PostgreSQL text).
    pub fn is_collated(&self) -> bool {
        self.is_string() || matches!(self, TsqlType::SqlVariant | TsqlType::HierarchyId)
    }

    /// Appends the TDS TYPE_INFO of a result column of this type.
    pub fn write_type_info(&self, buf: &mut Vec<u8>) {
        match self {
            TsqlType::Bit => buf.extend_from_slice(&[0x68, 1]),
            TsqlType::TinyInt => buf.extend_from_slice(&[0x26, 1]),
            TsqlType::SmallInt => buf.extend_from_slice(&[0x26, 2]),
            TsqlType::Int => buf.extend_from_slice(&[0x26, 4]),
            TsqlType::BigInt => buf.extend_from_slice(&[0x26, 8]),
            TsqlType::Decimal {
                precision,
                scale,
                numeric,
            } => buf.extend_from_slice(&[
                if *numeric { 0x6C } else { 0x6A },
                decimal_bytes(*precision),
                *precision,
                *scale,
            ]),
            TsqlType::Money => buf.extend_from_slice(&[0x6E, 8]),
            TsqlType::SmallMoney => buf.extend_from_slice(&[0x6E, 4]),
            TsqlType::Real => buf.extend_from_slice(&[0x6D, 4]),
            TsqlType::Float => buf.extend_from_slice(&[0x6D, 8]),
            TsqlType::Date => buf.push(0x28),
            TsqlType::Time(s) => buf.extend_from_slice(&[0x29, *s]),
            TsqlType::DateTime => buf.extend_from_slice(&[0x6F, 8]),
            TsqlType::SmallDateTime => buf.extend_from_slice(&[0x6F, 4]),
            TsqlType::DateTime2(s) => buf.extend_from_slice(&[0x2A, *s]),
            TsqlType::DateTimeOffset(s) => buf.extend_from_slice(&[0x2B, *s]),
            TsqlType::Char(n) => {
                buf.push(0xAF);
                buf.extend_from_slice(&n.to_le_bytes());
                buf.extend_from_slice(&COLLATION);
            }
            TsqlType::VarChar(l) => {
                buf.push(0xA7);
                buf.extend_from_slice(&len_u16(*l, 1).to_le_bytes());
                buf.extend_from_slice(&COLLATION);
            }
            TsqlType::NChar(n) => {
                buf.push(0xEF);
                buf.extend_from_slice(&(n * 2).to_le_bytes());
                buf.extend_from_slice(&COLLATION);
            }
            TsqlType::NVarChar(l) => {
                buf.push(0xE7);
                buf.extend_from_slice(&len_u16(*l, 2).to_le_bytes());
                buf.extend_from_slice(&COLLATION);
            }
            // text, ntext and image travel as their (max) successors: same values, PLP framing.
            TsqlType::Text => TsqlType::VarChar(Len::Max).write_type_info(buf),
            TsqlType::NText | TsqlType::SqlVariant | TsqlType::HierarchyId => {
                TsqlType::NVarChar(Len::Max).write_type_info(buf)
            }
            TsqlType::Image | TsqlType::Geography | TsqlType::Geometry => {
                TsqlType::VarBinary(Len::Max).write_type_info(buf)
            }
            TsqlType::Binary(n) => {
                buf.push(0xAD);
                buf.extend_from_slice(&n.to_le_bytes());
            }
            TsqlType::VarBinary(l) => {
                buf.push(0xA5);
                buf.extend_from_slice(&len_u16(*l, 1).to_le_bytes());
            }
            TsqlType::RowVersion => {
                buf.push(0xAD);
                buf.extend_from_slice(&8u16.to_le_bytes());
            }
            TsqlType::UniqueIdentifier => buf.extend_from_slice(&[0x24, 16]),
            TsqlType::Xml => buf.extend_from_slice(&[0xF1, 0]),
        }
    }

    /// Whether values travel as PLP (partially length-prefixed) chunks.
    pub fn is_plp(&self) -> bool {
        matches!(
            self,
            TsqlType::VarChar(Len::Max)
                | TsqlType::NVarChar(Len::Max)
                | TsqlType::VarBinary(Len::Max)
                | TsqlType::Xml
                | TsqlType::Text
                | TsqlType::NText
                | TsqlType::Image
                | TsqlType::SqlVariant
                | TsqlType::HierarchyId
                | TsqlType::Geography
                | TsqlType::Geometry
        )
    }
}

fn len_u16(l: Len, unit: u16) -> u16 {
    match l {
        Len::N(n) => n * unit,
        Len::Max => 0xFFFF,
    }
}

/// Bytes of a DECIMALN value including its sign byte (5, 9, 13, 17).
pub fn decimal_bytes(precision: u8) -> u8 {
    match precision {
        0..=9 => 5,
        10..=19 => 9,
        20..=28 => 13,
        _ => 17,
    }
}

/// Bytes of the time part at a fractional-second scale (3, 4, 5).
pub fn time_bytes(scale: u8) -> u8 {
    match scale {
        0..=2 => 3,
        3..=4 => 4,
        _ => 5,
    }
}

impl fmt::Display for TsqlType {
    /// The T-SQL spelling, e.g. `nvarchar(50)`, `decimal(38,0)`, `varbinary(max)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.sys_name();
        let len = |l: &Len| match l {
            Len::N(n) => n.to_string(),
            Len::Max => "max".into(),
        };
        match self {
            TsqlType::Decimal {
                precision, scale, ..
            } => write!(f, "{name}({precision},{scale})"),
            TsqlType::Time(s) | TsqlType::DateTime2(s) | TsqlType::DateTimeOffset(s) => {
                write!(f, "{name}({s})")
            }
            TsqlType::Char(n) | TsqlType::NChar(n) | TsqlType::Binary(n) => {
                write!(f, "{name}({n})")
            }
            TsqlType::VarChar(l) | TsqlType::NVarChar(l) | TsqlType::VarBinary(l) => {
                write!(f, "{name}({})", len(l))
            }
            _ => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spellings() {
        assert_eq!(
            TsqlType::parse("NVARCHAR(MAX)").unwrap(),
            TsqlType::NVarChar(Len::Max)
        );
        assert_eq!(
            TsqlType::parse("decimal(38, 38)").unwrap(),
            TsqlType::Decimal {
                precision: 38,
                scale: 38,
                numeric: false
            }
        );
        assert_eq!(
            TsqlType::parse("[datetime2]").unwrap(),
            TsqlType::DateTime2(7)
        );
        assert_eq!(TsqlType::parse("float(24)").unwrap(), TsqlType::Real);
        assert_eq!(
            TsqlType::parse("sysname").unwrap(),
            TsqlType::NVarChar(Len::N(128))
        );
        assert!(TsqlType::parse("decimal(39,0)").is_err());
        assert!(TsqlType::parse("nvarchar(4001)").is_err());
        assert!(TsqlType::parse("datetime2(8)").is_err());
        assert!(TsqlType::parse("frobnicate").is_err());
    }

    #[test]
    fn sys_facts() {
        assert_eq!(TsqlType::NVarChar(Len::N(50)).max_length(), 100);
        assert_eq!(TsqlType::DateTime2(7).max_length(), 8);
        assert_eq!(TsqlType::DateTime2(7).precision(), 27);
        assert_eq!(TsqlType::DateTimeOffset(7).precision(), 34);
        assert_eq!(TsqlType::Time(7).precision(), 16);
        assert_eq!(
            TsqlType::Decimal {
                precision: 38,
                scale: 0,
                numeric: false
            }
            .max_length(),
            17
        );
        assert_eq!(
            TsqlType::parse("varbinary(max)").unwrap().to_string(),
            "varbinary(max)"
        );
    }
}
