//! What flows between the components: table descriptions, values, changes and positions.
//!
//! Contract: source-side names are kept exactly as SQL Server spells them; quoting happens only
//! through [`quote_tsql`] and [`quote_pg`], never by string pasting.

mod target_kind;

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
pub use target_kind::TargetKind;

/// A source table's two-part name, as SQL Server spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// Schema (`dbo`).
    pub schema: String,
    /// Table.
    pub name: String,
}

impl TableName {
    /// `[schema].[name]` with `]` doubled: safe to paste into T-SQL.
    pub fn tsql(&self) -> String {
        format!("{}.{}", quote_tsql(&self.schema), quote_tsql(&self.name))
    }

    /// Parses `schema.table`, where either part may be `[bracketed]` (to hold a dot).
    pub fn parse(s: &str) -> Option<TableName> {
        let parts = split_two_part(s)?;
        Some(TableName {
            schema: parts.0,
            name: parts.1,
        })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Splits `a.b` / `[a.x].[b]` into its two unquoted parts.
pub fn split_two_part(s: &str) -> Option<(String, String)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut bracket = false;
    while let Some(c) = chars.next() {
        match c {
            '[' if !bracket && cur.is_empty() => bracket = true,
            ']' if bracket => {
                if chars.peek() == Some(&']') {
                    chars.next();
                    cur.push(']');
                } else {
                    bracket = false;
                }
            }
            '.' if !bracket => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) || bracket {
        return None;
    }
    let b = parts.pop()?;
    let a = parts.pop()?;
    Some((a, b))
}

/// A target table's name in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PgTableName {
    /// Schema (`public`).
    pub schema: String,
    /// Table.
    pub name: String,
}

impl PgTableName {
    /// `"schema"."name"` with `"` doubled.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_pg(&self.schema), quote_pg(&self.name))
    }
}

impl fmt::Display for PgTableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// `[name]` with `]` doubled.
pub fn quote_tsql(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `"name"` with `"` doubled.
pub fn quote_pg(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal (standard_conforming_strings on, PostgreSQL's default).
pub fn pg_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A T-SQL string literal `N'...'` with `'` doubled.
pub fn tsql_literal(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

/// A column's declared SQL Server type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceType {
    /// Base type name, lower case (`nvarchar`, `datetime2`).
    pub name: String,
    /// `sys.columns.max_length`: bytes; -1 for `(max)`.
    pub max_length: i16,
    /// Precision (decimal, numeric, temporal).
    pub precision: u8,
    /// Scale (decimal, numeric, time, datetime2, datetimeoffset).
    pub scale: u8,
}

impl SourceType {
    /// The type as T-SQL spells it in a declaration (`nvarchar(100)`, `decimal(18,2)`).
    pub fn declaration(&self) -> String {
        let n = self.name.as_str();
        match n {
            "varchar" | "char" | "varbinary" | "binary" => {
                if self.max_length < 0 {
                    format!("{n}(max)")
                } else {
                    format!("{n}({})", self.max_length.max(1))
                }
            }
            "nvarchar" | "nchar" => {
                if self.max_length < 0 {
                    format!("{n}(max)")
                } else {
                    format!("{n}({})", (self.max_length / 2).max(1))
                }
            }
            "decimal" | "numeric" => format!("{n}({},{})", self.precision, self.scale),
            "time" | "datetime2" | "datetimeoffset" => format!("{n}({})", self.scale),
            "sysname" => "nvarchar(128)".into(),
            "timestamp" | "rowversion" => "binary(8)".into(),
            _ => n.to_string(),
        }
    }

    /// Characters for `n?(var)char(n)`, `None` for `(max)` and other types.
    pub fn char_length(&self) -> Option<i32> {
        match self.name.as_str() {
            "varchar" | "char" if self.max_length > 0 => Some(self.max_length as i32),
            "nvarchar" | "nchar" if self.max_length > 0 => Some(self.max_length as i32 / 2),
            _ => None,
        }
    }
}

/// A source column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceColumn {
    /// Name as SQL Server spells it.
    pub name: String,
    /// Declared type.
    pub source_type: SourceType,
    /// Accepts NULL.
    pub nullable: bool,
    /// An IDENTITY column.
    pub identity: bool,
    /// A computed column's definition as SQL Server prints it (`([qty]*[price])`); copied as a
    /// plain column holding its values.
    pub computed: Option<String>,
    /// For a computed column: whether SQL Server says its definition is deterministic
    /// (`COLUMNPROPERTY(..., 'IsDeterministic')`); none when it did not say.
    #[serde(default)]
    pub deterministic: Option<bool>,
    /// The default's definition, as SQL Server prints it (`(getdate())`).
    pub default: Option<String>,
}

/// A secondary index or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIndex {
    /// Name.
    pub name: String,
    /// Key columns and whether each is descending.
    pub columns: Vec<(String, bool)>,
    /// Included (non-key) columns.
    pub include: Vec<String>,
    /// Unique.
    pub unique: bool,
    /// Declared as a UNIQUE constraint (not only a unique index).
    pub unique_constraint: bool,
    /// A filtered index's predicate (T-SQL; not translated).
    pub filter: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub references: TableName,
    /// Referenced columns.
    pub ref_columns: Vec<String>,
    /// `NO_ACTION`, `CASCADE`, `SET_NULL`, `SET_DEFAULT`.
    pub on_delete: String,
    /// As `on_delete`.
    pub on_update: String,
}

/// A CDC capture instance of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInstance {
    /// Instance name (`dbo_orders`).
    pub name: String,
    /// First LSN it holds.
    pub start_lsn: Option<Lsn>,
    /// Captured columns.
    pub columns: Vec<String>,
}

/// A source table as discovery found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTable {
    /// Two-part name.
    pub name: TableName,
    /// `sys.tables.object_id`.
    pub object_id: i32,
    /// Columns in ordinal order.
    pub columns: Vec<SourceColumn>,
    /// Primary key columns in key order (empty: none).
    pub primary_key: Vec<String>,
    /// Secondary indexes and unique constraints.
    pub indexes: Vec<SourceIndex>,
    /// Foreign keys.
    pub foreign_keys: Vec<SourceForeignKey>,
    /// `IDENT_CURRENT`, when the table has an identity column.
    pub identity_current: Option<i64>,
    /// Change Tracking is enabled on the table.
    pub change_tracking: bool,
    /// CDC capture instances, oldest first.
    pub capture_instances: Vec<CaptureInstance>,
    /// Estimated rows (`sys.partitions`).
    pub estimated_rows: i64,
    /// CHECK constraints.
    #[serde(default)]
    pub checks: Vec<SourceCheck>,
    /// Columns whose collation is case-sensitive or binary (`_CS_`, `_BIN`); every other string
    /// column compares case-insensitively, as SQL Server's usual collations do.
    #[serde(default)]
    pub case_sensitive_columns: Vec<String>,
    /// Descriptions (`MS_Description` extended properties): the table's under `None`, a
    /// column's under its name.
    #[serde(default)]
    pub descriptions: Vec<(Option<String>, String)>,
    /// Columns of an alias type (`sp_addtype`, `CREATE TYPE ... FROM`): the column and the
    /// type's two-part name.
    #[serde(default)]
    pub alias_columns: Vec<(String, TableName)>,
}

/// A sequence object (`CREATE SEQUENCE`), as `sys.sequences` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSequence {
    /// Two-part name.
    pub name: TableName,
    /// `START WITH`.
    pub start: i64,
    /// `INCREMENT BY`.
    pub increment: i64,
    /// `MINVALUE`.
    pub min: i64,
    /// `MAXVALUE`.
    pub max: i64,
    /// `CYCLE`.
    pub cycle: bool,
    /// The value it last handed out (its start value when it never did).
    pub current: i64,
}

/// A CHECK constraint as SQL Server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheck {
    /// Constraint name.
    pub name: String,
    /// Its expression as SQL Server prints it (`([Qty]>=(0))`).
    pub definition: String,
    /// Disabled (`NOCHECK`): SQL Server does not enforce it.
    pub disabled: bool,
    /// Not trusted (added or re-enabled `WITH NOCHECK`): rows from before may break it.
    pub not_trusted: bool,
}

/// A value on its way to PostgreSQL. Temporal values count from PostgreSQL's epoch
/// (2000-01-01), so encoding them is arithmetic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// boolean.
    Bool(bool),
    /// smallint.
    I16(i16),
    /// integer.
    I32(i32),
    /// bigint.
    I64(i64),
    /// real.
    F32(f32),
    /// double precision.
    F64(f64),
    /// numeric: `mantissa * 10^-scale`, exact to 38 digits.
    Numeric {
        /// Unscaled value.
        mantissa: i128,
        /// Digits after the point.
        scale: u8,
    },
    /// text, varchar, xml.
    Text(String),
    /// bytea.
    Bytes(Vec<u8>),
    /// uuid, in RFC 4122 byte order.
    Uuid([u8; 16]),
    /// date: days since 2000-01-01.
    Date(i32),
    /// time: microseconds since midnight.
    Time(i64),
    /// timestamp: microseconds since 2000-01-01 00:00.
    Timestamp(i64),
    /// timestamptz: microseconds since 2000-01-01 00:00 UTC.
    TimestampTz(i64),
}

/// The `SESSION_CONTEXT` key that lets a session pass the source's write fence: the fallback's
/// sessions set it to 1 (`sp_set_session_context`). It guards against mistakes, not against a
/// user who sets it deliberately: any session may set any key.
pub const FENCE_BYPASS_KEY: &str = "replicator_fallback";

/// A CDC log sequence number: 10 bytes, compared as unsigned big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lsn(pub [u8; 10]);

impl Lsn {
    /// From a `binary(10)` value; `None` when it is not 10 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Lsn> {
        <[u8; 10]>::try_from(b).ok().map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}:{:02x}{:02x}{:02x}{:02x}:{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]
        )
    }
}

/// Where a table's changes come from, decided at start-up from the user's choice
/// ([`crate::config::ChangeSourceChoice`]) and what the source has enabled. Stored typed in the
/// checkpoint store; [`ChangeSource::label`] is what `status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeSource {
    /// Change Tracking.
    ChangeTracking,
    /// CDC, through this capture instance.
    Cdc(String),
    /// Copied once and validated at cutover; no stream (`change_source = "none"`).
    CopiedOnce,
}

impl ChangeSource {
    /// The label `status` prints (`change_tracking`, `cdc`, `none`).
    pub fn label(&self) -> &'static str {
        match self {
            ChangeSource::ChangeTracking => "change_tracking",
            ChangeSource::Cdc(_) => "cdc",
            ChangeSource::CopiedOnce => "none",
        }
    }

    /// The CDC capture instance, for a CDC table.
    pub fn capture_instance(&self) -> Option<&str> {
        match self {
            ChangeSource::Cdc(ci) => Some(ci),
            _ => None,
        }
    }

    /// True for a table that streams (Change Tracking or CDC).
    pub fn streams(&self) -> bool {
        !matches!(self, ChangeSource::CopiedOnce)
    }
}

/// A validation's outcome for one table (serialised as `equal`, `different`, `repaired`,
/// `skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every compared row is the same on both sides.
    Equal,
    /// A difference was confirmed (and not repaired).
    Different,
    /// Differences were found and every one was rewritten from the source.
    Repaired,
    /// Not compared (the note says why).
    Skipped,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Equal => "equal",
            Verdict::Different => "different",
            Verdict::Repaired => "repaired",
            Verdict::Skipped => "skipped",
        })
    }
}

/// Where a table's change stream stands: a CT version or a CDC LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Position {
    /// Change Tracking version (changes up to and including it are applied).
    Ct(i64),
    /// CDC LSN (changes up to and including it are applied).
    Cdc(Lsn),
}

impl Position {
    /// Parses what [`fmt::Display`] prints (`ct:42`, `cdc:0000002a:00000010:0003`).
    pub fn parse(s: &str) -> Option<Position> {
        if let Some(v) = s.strip_prefix("ct:") {
            return v.parse().ok().map(Position::Ct);
        }
        let hex: String = s
            .strip_prefix("cdc:")?
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if hex.len() != 20 {
            return None;
        }
        let mut out = [0u8; 10];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Position::Cdc(Lsn(out)))
    }

    /// Distance in versions (CT) for lag reporting; `None` for LSNs.
    pub fn versions_behind(&self, newer: &Position) -> Option<i64> {
        match (self, newer) {
            (Position::Ct(a), Position::Ct(b)) => Some((b - a).max(0)),
            _ => None,
        }
    }
}

impl PartialOrd for Position {
    /// Positions of different kinds are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Position::Ct(a), Position::Ct(b)) => a.partial_cmp(b),
            (Position::Cdc(a), Position::Cdc(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Ct(v) => write!(f, "ct:{v}"),
            Position::Cdc(l) => write!(f, "cdc:{l}"),
        }
    }
}

/// One key's net change in a window: its row after the window, or `None` when deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Key values, in primary key order (target values).
    pub key: Vec<Value>,
    /// The whole row in target column order, or `None` for a delete.
    pub row: Option<Vec<Value>>,
}

/// A decimal's exact text (`-12.3400` keeps its scale).
pub fn render_decimal(mantissa: i128, scale: u8) -> String {
    let neg = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let body = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_quote_and_parse() {
        assert_eq!(quote_tsql("x]y"), "[x]]y]");
        assert_eq!(quote_pg("a\"b"), "\"a\"\"b\"");
        let t = TableName::parse("[my.schema].[x]]y]").expect("parses");
        assert_eq!(t.schema, "my.schema");
        assert_eq!(t.name, "x]y");
        assert_eq!(t.tsql(), "[my.schema].[x]]y]");
        assert!(TableName::parse("nodot").is_none());
        assert!(TableName::parse("a.b.c").is_none());
    }

    #[test]
    fn positions_round_trip_and_order() {
        let a = Position::Cdc(Lsn([0, 0, 0, 0x2a, 0, 0, 0, 0x10, 0, 3]));
        assert_eq!(a.to_string(), "cdc:0000002a:00000010:0003");
        assert_eq!(Position::parse(&a.to_string()), Some(a));
        assert_eq!(Position::parse("ct:42"), Some(Position::Ct(42)));
        let b = Position::Cdc(Lsn([0, 0, 0, 0x2a, 0, 0, 0, 0x10, 0, 0xff]));
        assert!(a < b);
        assert!(Position::Ct(3) < Position::Ct(10));
        assert_eq!(Position::Ct(1).partial_cmp(&a), None);
        assert_eq!(Position::parse("cdc:zz"), None);
    }

    #[test]
    fn declarations() {
        let t = |name: &str, len: i16, p: u8, s: u8| SourceType {
            name: name.into(),
            max_length: len,
            precision: p,
            scale: s,
        };
        assert_eq!(t("nvarchar", 200, 0, 0).declaration(), "nvarchar(100)");
        assert_eq!(t("nvarchar", -1, 0, 0).declaration(), "nvarchar(max)");
        assert_eq!(t("decimal", 17, 38, 4).declaration(), "decimal(38,4)");
        assert_eq!(t("datetime2", 8, 27, 7).declaration(), "datetime2(7)");
    }
}
