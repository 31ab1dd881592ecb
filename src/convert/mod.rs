//! SQL Server types to PostgreSQL types, and values from one to the other, lossless by default.
//!
//! Contract: [`plan_table`] decides, once per table, each target column's name, type and the T-SQL
//! expression that reads it; [`value::to_value`] converts one cell under that plan. Where
//! PostgreSQL cannot hold a value exactly, the configured policy applies and the loss is counted
//! per column ([`Losses`]); nothing is dropped silently.

pub mod copy;
pub mod direct;
pub mod expr;
pub mod value;

use crate::config::{ColumnSettings, IdentifierCase, Mapping, TableSelector};
use crate::model::{quote_tsql, PgTableName, SourceColumn, SourceTable, TableName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub use crate::model::TargetKind;

/// How a sql_variant is read: its base type's name, `:`, and its value as exact text.
/// `CAST(... AS nvarchar)` keeps 6 digits of a float, 2 decimals of money and whole minutes of
/// a datetime, and reads a varbinary as UTF-16; those base types are converted with the style
/// that keeps them (3 for float and real, 2 for money, 121 for datetime, 1 for binary: `0x` and
/// hex digits).
pub fn variant_read(col: &str) -> String {
    format!(
        "CAST(SQL_VARIANT_PROPERTY({col}, 'BaseType') AS nvarchar(128)) + N':' + \
         CASE CAST(SQL_VARIANT_PROPERTY({col}, 'BaseType') AS nvarchar(128)) \
         WHEN N'float' THEN CONVERT(nvarchar(4000), CAST({col} AS float), 3) \
         WHEN N'real' THEN CONVERT(nvarchar(4000), CAST({col} AS real), 3) \
         WHEN N'money' THEN CONVERT(nvarchar(4000), CAST({col} AS money), 2) \
         WHEN N'smallmoney' THEN CONVERT(nvarchar(4000), CAST({col} AS money), 2) \
         WHEN N'datetime' THEN CONVERT(nvarchar(4000), CAST({col} AS datetime), 121) \
         WHEN N'smalldatetime' THEN CONVERT(nvarchar(4000), CAST({col} AS datetime), 121) \
         WHEN N'binary' THEN CONVERT(nvarchar(4000), CAST({col} AS varbinary(8000)), 1) \
         WHEN N'varbinary' THEN CONVERT(nvarchar(4000), CAST({col} AS varbinary(8000)), 1) \
         ELSE CAST({col} AS nvarchar(4000)) END"
    )
}

/// The default target type of a SQL Server type; `Err` names why there is none.
pub fn default_kind(c: &SourceColumn) -> Result<TargetKind, String> {
    let t = &c.source_type;
    Ok(match t.name.as_str() {
        "bit" => TargetKind::Bool,
        "tinyint" | "smallint" => TargetKind::Int2,
        "int" => TargetKind::Int4,
        "bigint" => TargetKind::Int8,
        "decimal" | "numeric" => TargetKind::Numeric(Some((t.precision, t.scale))),
        "money" => TargetKind::Numeric(Some((19, 4))),
        "smallmoney" => TargetKind::Numeric(Some((10, 4))),
        "real" => TargetKind::Float4,
        "float" if t.precision <= 24 => TargetKind::Float4,
        "float" => TargetKind::Float8,
        "date" => TargetKind::Date,
        "time" => TargetKind::Time,
        "datetime" | "datetime2" | "smalldatetime" => TargetKind::Timestamp,
        "datetimeoffset" => TargetKind::TimestampTz,
        "char" | "varchar" | "nchar" | "nvarchar" | "sysname" => match t.char_length() {
            Some(n) => TargetKind::Varchar(n as u32),
            None if t.name == "sysname" => TargetKind::Varchar(128),
            None => TargetKind::Text,
        },
        "text" | "ntext" => TargetKind::Text,
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => TargetKind::Bytea,
        "uniqueidentifier" => TargetKind::Uuid,
        "xml" => TargetKind::Xml,
        // The value as text: a hierarchyid's path (`/1/3/`), a sql_variant's value exactly
        // ([`variant_text`]; its base type is kept only with mapping.types.sql_variant = "jsonb").
        "sql_variant" | "hierarchyid" => TargetKind::Text,
        // Extended WKB: the well-known binary with the SRID inside (see [`value::ewkb`]), what
        // PostGIS reads with `ST_GeomFromEWKB` or a cast to geometry.
        "geography" | "geometry" => TargetKind::Bytea,
        other => {
            return Err(format!(
                "type {other} has no faithful PostgreSQL type; choose one explicitly with \
                 columns.{}.type (e.g. \"text\") and, for CLR types, an expression \
                 (e.g. \"[{}].ToString()\")",
                c.name,
                c.name.replace(']', "]]")
            ))
        }
    })
}

/// How one target column is produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPlan {
    /// Source column name (or the configured column an expression replaces).
    pub source: String,
    /// Target column name.
    pub target: String,
    /// Target type.
    pub kind: TargetKind,
    /// T-SQL select expression (unqualified column names), e.g. `CAST([c] AS decimal(19,4))`.
    pub read_expr: String,
    /// For nchar/nvarchar/ntext: an expression yielding the UTF-16LE bytes, used to re-read a
    /// chunk whose text a client library cannot decode (lone surrogates), so the value reaches
    /// the policy instead of failing the read. Binary cells of such a column are UTF-16LE.
    pub utf16_expr: Option<String>,
    /// Not nullable.
    pub not_null: bool,
    /// Part of the key (primary or configured).
    pub key: bool,
    /// An identity column.
    pub identity: bool,
    /// Source type as declared (for reports and key parameters).
    pub source_decl: String,
    /// A configured expression replaces the column's value.
    pub expression: bool,
    /// How a CDC change row gives the value, where not as `read_expr`: SQL Server stores NULL for
    /// every computed column in a change table, so a deterministic one is computed from its own
    /// definition over the change row's captured columns (its value at the change's position),
    /// a non-deterministic one read from the source row as it is now (alias `__ct` is the
    /// change table).
    pub change_expr: Option<String>,
    /// The PostgreSQL domain the column is declared with (a column of a SQL Server alias type,
    /// under `mapping.alias_types = "domain"`); its base is `kind`.
    #[serde(default)]
    pub domain: Option<PgTableName>,
    /// The target sequence a `NEXT VALUE FOR` default draws from.
    #[serde(default)]
    pub default_sequence: Option<PgTableName>,
    /// The case-insensitive collation the column is declared with (`mapping.collation =
    /// "preserve"` on a case-insensitive source column; see [`CI_COLLATION`]).
    #[serde(default)]
    pub collate: Option<PgTableName>,
    /// A SQL Server `char(n)`/`nchar(n)`: declared `character(n)`, which pads and compares
    /// ignoring trailing spaces as SQL Server does; `kind` stays `Varchar(n)` for conversion.
    #[serde(default)]
    pub fixed: bool,
    /// Declared `citext` (`mapping.collation = "citext"` on a case-insensitive text column);
    /// `kind` stays the conversion's (a varchar's limit becomes a CHECK).
    #[serde(default)]
    pub citext: bool,
    /// A geography or geometry column read as SRID and WKB into bytea, written as extended WKB
    /// ([`value::ewkb`]).
    #[serde(default)]
    pub spatial: bool,
    /// A sql_variant column read as its base type's name, `:`, and its value's exact text
    /// ([`variant_read`]), written as text or as jsonb.
    #[serde(default)]
    pub variant: bool,
}

/// The name of the nondeterministic ICU collation `mapping.collation = "preserve"` creates in
/// each target schema: case-insensitive, accent-sensitive, as SQL Server's `_CI_AS`.
pub const CI_COLLATION: &str = "replicator_ci_as";

impl ColumnPlan {
    /// The type the column is declared with: its domain, or `kind`.
    pub fn declared_type(&self) -> String {
        match &self.domain {
            Some(d) => d.sql(),
            None if self.citext => "citext".into(),
            None => self.base_type(),
        }
    }

    /// The PostgreSQL type under any domain: `character(n)` for a fixed-length source type,
    /// else `kind`'s.
    pub fn base_type(&self) -> String {
        match self.kind {
            TargetKind::Varchar(n) if self.fixed => format!("character({n})"),
            k => k.ddl(),
        }
    }

    /// The declared type with its collation, or with a citext column's length limit, as a
    /// column definition takes it (without NOT NULL).
    pub fn column_type(&self) -> String {
        match (&self.collate, self.kind) {
            (Some(c), _) => format!("{} COLLATE {}", self.declared_type(), c.sql()),
            (None, TargetKind::Varchar(n)) if self.citext => format!(
                "citext CHECK (char_length({}) <= {n})",
                crate::model::quote_pg(&self.target)
            ),
            _ => self.declared_type(),
        }
    }
}

#[cfg(test)]
impl ColumnPlan {
    /// A nullable column `c` of `kind` read as `[c]`, nothing else set (for unit tests).
    pub(crate) fn plain(kind: TargetKind) -> ColumnPlan {
        ColumnPlan {
            source: "c".into(),
            target: "c".into(),
            kind,
            read_expr: "[c]".into(),
            utf16_expr: None,
            not_null: false,
            key: false,
            identity: false,
            source_decl: "x".into(),
            expression: false,
            change_expr: None,
            domain: None,
            default_sequence: None,
            collate: None,
            spatial: false,
            variant: false,
            citext: false,
            fixed: false,
        }
    }
}

/// How one table is migrated: names, columns, key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    /// Source table as discovered.
    pub source: SourceTable,
    /// Target table.
    pub target: PgTableName,
    /// Target columns in order.
    pub columns: Vec<ColumnPlan>,
    /// Indexes into `columns` of the key, in key order.
    pub key: Vec<usize>,
    /// Where changes come from.
    pub change_source: crate::config::ChangeSourceChoice,
    /// Index of the `[[tables]]` entry that selected the table.
    pub selector: usize,
    /// Computed columns PostgreSQL computes (`GENERATED ALWAYS AS (...) STORED`): declared by
    /// the DDL, never read from the source nor written by the snapshot or the stream.
    #[serde(default)]
    pub generated: Vec<GeneratedColumn>,
}

/// A computed column the target computes itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedColumn {
    /// Source column name.
    pub source: String,
    /// Target column name.
    pub target: String,
    /// Target type.
    pub kind: TargetKind,
    /// The definition, as SQL Server prints it.
    pub definition: String,
    /// The definition translated to PostgreSQL.
    pub expr: String,
    /// The plain column it would otherwise be (see [`TablePlan::keep_plain`]).
    pub plain: ColumnPlan,
}

impl TablePlan {
    /// Makes the generated columns `plain` names plain columns again, holding the source's
    /// values (a target table built before they were generated, or by a release that did not
    /// generate them, holds them as values; writing no value into such a column would lose
    /// data). Idempotent; keeps the key's positions right.
    pub fn keep_plain(&mut self, plain: impl Fn(&str) -> bool) {
        let key_names: Vec<String> = self.key_columns().map(|c| c.source.clone()).collect();
        let (back, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.generated)
            .into_iter()
            .partition(|g| plain(&g.target));
        self.generated = stay;
        if back.is_empty() {
            return;
        }
        for g in back {
            let at = self
                .source
                .columns
                .iter()
                .position(|c| c.name == g.source)
                .map(|src| {
                    self.columns
                        .iter()
                        .position(|c| {
                            self.source
                                .columns
                                .iter()
                                .position(|s| s.name == c.source)
                                .is_some_and(|p| p > src)
                        })
                        .unwrap_or(self.columns.len())
                })
                .unwrap_or(self.columns.len());
            self.columns.insert(at, g.plain);
        }
        self.key = key_names
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.source == k))
            .collect();
    }

    /// The key's column plans.
    pub fn key_columns(&self) -> impl Iterator<Item = &ColumnPlan> {
        self.key.iter().map(|i| &self.columns[*i])
    }

    /// The select list reading every target column, each aliased `[c0]`, `[c1]`...; with
    /// `utf16_safe`, national text is read as UTF-16LE bytes.
    pub fn select_list(&self, utf16_safe: bool) -> String {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let e = match (&c.utf16_expr, utf16_safe) {
                    (Some(u), true) => u,
                    _ => &c.read_expr,
                };
                format!("{e} AS [c{i}]")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `[k1], [k2]` (source key column names).
    pub fn key_order_by(&self) -> String {
        self.key_columns()
            .map(|c| quote_tsql(&c.source))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A name in the target, by the identifier-case rule.
pub fn target_identifier(name: &str, case: IdentifierCase) -> String {
    match case {
        IdentifierCase::Lower => name.to_lowercase(),
        IdentifierCase::Preserve => name.to_string(),
    }
}

/// The target schema of a source schema.
pub fn target_schema(schema: &str, mapping: &Mapping) -> String {
    mapping
        .schemas
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(schema))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| target_identifier(schema, mapping.identifier_case))
}

/// Plans one table. `selector_index` names the `[[tables]]` entry in errors. Errors name the table
/// and column and say what to configure.
pub fn plan_table(
    table: &SourceTable,
    selector: &TableSelector,
    selector_index: usize,
    mapping: &Mapping,
) -> Result<TablePlan, String> {
    let tname = &table.name;
    let key_names: Vec<String> = match (&selector.key, table.primary_key.is_empty()) {
        (Some(k), _) => k.clone(),
        (None, false) => table.primary_key.clone(),
        (None, true) => {
            return Err(format!(
            "table {tname} has no primary key: add one on SQL Server, or name a unique key with \
                 tables[{selector_index}].key = [\"col\", ...]"
        ))
        }
    };
    for name in selector.columns.keys() {
        if !table
            .columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "tables[{selector_index}].columns.{name}: table {tname} has no column {name}"
            ));
        }
    }
    let settings = |c: &SourceColumn| -> ColumnSettings {
        selector
            .columns
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut columns = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for c in &table.columns {
        let s = settings(c);
        let is_key = key_names.iter().any(|k| k.eq_ignore_ascii_case(&c.name));
        if s.exclude {
            if is_key {
                return Err(format!(
                    "tables[{selector_index}].columns.{}.exclude: column {} of {tname} is part of the key",
                    c.name, c.name
                ));
            }
            continue;
        }
        let ckey = format!("tables[{selector_index}].columns.{}", c.name);
        let kind = match (&s.target_type, mapping.types.get(&c.source_type.name)) {
            (Some(t), _) => TargetKind::parse(t).map_err(|m| format!("{ckey}.type: {m}"))?,
            (None, Some(t)) => TargetKind::parse(t)
                .map_err(|m| format!("mapping.types.{}: {m}", c.source_type.name))?,
            (None, None) => {
                default_kind(c).map_err(|m| format!("table {tname}, column {}: {m}", c.name))?
            }
        };
        if is_key
            && matches!(
                kind,
                TargetKind::Ltree | TargetKind::Geometry | TargetKind::Geography
            )
        {
            return Err(format!(
                "{ckey}: column {} of {tname} is part of the key; a key column cannot become {} (keep it text or bytea)",
                c.name,
                kind.ddl()
            ));
        }
        if is_key && s.expression.is_some() {
            return Err(format!(
                "{ckey}.expression: column {} of {tname} is part of the key; keys are copied as they are",
                c.name
            ));
        }
        let ty = c.source_type.name.as_str();
        let read_of = |col: &str| match &s.expression {
            Some(e) => format!("({e})"),
            None => match ty {
                "money" => format!("CAST({col} AS decimal(19,4))"),
                "smallmoney" => format!("CAST({col} AS decimal(10,4))"),
                "ntext" => format!("CAST({col} AS nvarchar(max))"),
                "text" => format!("CAST({col} AS varchar(max))"),
                "image" => format!("CAST({col} AS varbinary(max))"),
                "sql_variant" if matches!(kind, TargetKind::Text | TargetKind::Jsonb) => {
                    variant_read(col)
                }
                "sql_variant" => format!("CAST({col} AS nvarchar(4000))"),
                "hierarchyid" => format!("CAST({col} AS nvarchar(4000))"),
                "geography" | "geometry"
                    if matches!(
                        kind,
                        TargetKind::Bytea | TargetKind::Geometry | TargetKind::Geography
                    ) =>
                {
                    format!("CAST({col}.STSrid AS binary(4)) + {col}.STAsBinary()")
                }
                "geography" | "geometry" => format!("{col}.STAsText()"),
                _ => col.to_string(),
            },
        };
        let col = quote_tsql(&c.name);
        let read_expr = read_of(&col);
        let change_expr = match (&c.computed, &s.expression) {
            (Some(def), None) if c.deterministic != Some(false) => Some(read_of(&format!(
                "CAST({def} AS {})",
                c.source_type.declaration()
            ))),
            (Some(_), None) => {
                let keys: Vec<String> = key_names
                    .iter()
                    .map(|k| format!("__src.{k} = __ct.{k}", k = quote_tsql(k)))
                    .collect();
                Some(format!(
                    "(SELECT {} FROM {} AS __src WHERE {})",
                    read_of(&format!("__src.{col}")),
                    tname.tsql(),
                    keys.join(" AND ")
                ))
            }
            _ => None,
        };
        let utf16_expr = match (&s.expression, ty) {
            (None, "nchar" | "nvarchar" | "sysname") if c.source_type.max_length > 0 => Some(
                format!("CAST({col} AS varbinary({}))", c.source_type.max_length),
            ),
            (None, "nchar" | "nvarchar" | "ntext") => Some(format!(
                "CAST(CAST({col} AS nvarchar(max)) AS varbinary(max))"
            )),
            _ => None,
        };
        let target = match &s.rename {
            Some(r) => r.clone(),
            None => target_identifier(&c.name, mapping.identifier_case),
        };
        if let Some(prev) = seen.insert(target.clone(), c.name.clone()) {
            return Err(format!(
                "table {tname}: columns {prev} and {} both become {target} in PostgreSQL; rename one \
                 with tables[{selector_index}].columns.{}.rename, or set mapping.identifier_case = \"preserve\"",
                c.name, c.name
            ));
        }
        columns.push(ColumnPlan {
            source: c.name.clone(),
            target,
            kind,
            read_expr,
            utf16_expr,
            not_null: !c.nullable,
            key: is_key,
            identity: c.identity,
            source_decl: c.source_type.declaration(),
            expression: s.expression.is_some(),
            change_expr,
            domain: match table.alias_columns.iter().find(|(n, _)| *n == c.name) {
                Some((_, alias))
                    if mapping.alias_types == crate::config::AliasTypes::Domain
                        && s.target_type.is_none()
                        && s.expression.is_none()
                        && !mapping.types.contains_key(&c.source_type.name) =>
                {
                    Some(PgTableName {
                        schema: target_schema(&alias.schema, mapping),
                        name: target_identifier(&alias.name, mapping.identifier_case),
                    })
                }
                _ => None,
            },
            default_sequence: c
                .default
                .as_deref()
                .and_then(next_value_for)
                .map(|seq| sequence_target(&seq, mapping)),
            variant: ty == "sql_variant"
                && matches!(kind, TargetKind::Text | TargetKind::Jsonb)
                && s.expression.is_none(),
            spatial: matches!(ty, "geography" | "geometry")
                && matches!(
                    kind,
                    TargetKind::Bytea | TargetKind::Geometry | TargetKind::Geography
                )
                && s.expression.is_none(),
            fixed: matches!(ty, "char" | "nchar")
                && matches!(kind, TargetKind::Varchar(_))
                && s.target_type.is_none()
                && s.expression.is_none()
                && !mapping.types.contains_key(ty),
            citext: mapping.collation == crate::config::Collation::Citext
                && matches!(kind, TargetKind::Text | TargetKind::Varchar(_))
                && !table
                    .case_sensitive_columns
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&c.name)),
            collate: (mapping.collation == crate::config::Collation::Preserve
                && matches!(kind, TargetKind::Text | TargetKind::Varchar(_))
                && !table
                    .case_sensitive_columns
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&c.name)))
            .then(|| PgTableName {
                schema: target_schema(&tname.schema, mapping),
                name: CI_COLLATION.into(),
            }),
        });
        // An alias type's domain wins over citext; citext does not pad.
        if let Some(last) = columns.last_mut() {
            last.citext &= last.domain.is_none();
            last.fixed &= !last.citext;
        }
    }
    let generated = generated_columns(table, &mut columns, mapping);
    let mut key = Vec::new();
    for k in &key_names {
        match columns
            .iter()
            .position(|c| c.source.eq_ignore_ascii_case(k))
        {
            Some(i) => key.push(i),
            None => {
                return Err(format!(
                    "tables[{selector_index}].key: table {tname} has no column {k}"
                ))
            }
        }
    }
    Ok(TablePlan {
        source: table.clone(),
        target: PgTableName {
            schema: target_schema(&tname.schema, mapping),
            name: target_identifier(&tname.name, mapping.identifier_case),
        },
        columns,
        key,
        change_source: selector.change_source,
        selector: selector_index,
        generated,
    })
}

/// Takes out of `columns` the computed columns PostgreSQL can compute the same way: those whose
/// definition SQL Server says is deterministic, that are not part of the key and not configured
/// (a type, an expression), and whose definition translates to the column's type
/// ([`expr::translate_value`]). The others stay plain columns holding the source's values.
fn generated_columns(
    table: &SourceTable,
    columns: &mut Vec<ColumnPlan>,
    mapping: &Mapping,
) -> Vec<GeneratedColumn> {
    if mapping.computed_columns == crate::config::ComputedColumns::Values {
        return Vec::new();
    }
    let mut out = Vec::new();
    let candidates: Vec<(String, String)> = table
        .columns
        .iter()
        .filter(|c| c.deterministic == Some(true))
        .filter_map(|c| c.computed.clone().map(|d| (c.name.clone(), d)))
        .collect();
    for (name, definition) in candidates {
        let Some(i) = columns
            .iter()
            .position(|c| c.source == name && !c.key && !c.expression && c.domain.is_none())
        else {
            continue;
        };
        let others: Vec<ColumnPlan> = columns
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| c.clone())
            .collect();
        let scope = expr::Scope::of_columns(&others, table);
        if let Ok(pg) = expr::translate_value(&definition, &scope, columns[i].kind) {
            let c = columns.remove(i);
            out.push(GeneratedColumn {
                source: c.source.clone(),
                target: c.target.clone(),
                kind: c.kind,
                definition,
                expr: pg,
                plain: c,
            });
        }
    }
    out
}

/// The sequence a `NEXT VALUE FOR [schema].[seq]` default names (outer parentheses allowed).
pub fn next_value_for(default: &str) -> Option<TableName> {
    let mut d = default.trim();
    while let Some(inner) = d.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        d = inner.trim();
    }
    let words: Vec<&str> = d.splitn(4, char::is_whitespace).collect();
    match words.as_slice() {
        [n, v, f, name]
            if n.eq_ignore_ascii_case("next")
                && v.eq_ignore_ascii_case("value")
                && f.eq_ignore_ascii_case("for") =>
        {
            TableName::parse(name.trim()).or_else(|| {
                Some(TableName {
                    schema: "dbo".into(),
                    name: name
                        .trim()
                        .trim_matches(|c| c == '[' || c == ']')
                        .to_string(),
                })
            })
        }
        _ => None,
    }
}

/// Where a source sequence lives on the target (schema mapping and identifier case applied).
pub fn sequence_target(seq: &TableName, mapping: &Mapping) -> PgTableName {
    PgTableName {
        schema: target_schema(&seq.schema, mapping),
        name: target_identifier(&seq.name, mapping.identifier_case),
    }
}

/// Plans every selected table; the first selector that matches a table decides its settings.
/// A table that cannot be planned (no key, a type without a default) is set aside with its
/// reason. `Err` only for the selection as a whole: an exact selector naming no table, or two
/// source tables that become one target table (naming both).
pub fn plan_tables(
    discovered: &[SourceTable],
    selectors: &[TableSelector],
    mapping: &Mapping,
) -> Result<Planned, String> {
    let mut planned = Planned::default();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for (i, sel) in selectors.iter().enumerate() {
        if sel.is_exact() && !discovered.iter().any(|t| sel.matches(&t.name)) {
            return Err(format!(
                "tables[{i}].source: no table {} in the source database (or no permission to see it)",
                sel.source
            ));
        }
    }
    for t in discovered {
        let Some((i, sel)) = crate::config::selector_for(selectors, &t.name) else {
            continue;
        };
        let plan = match plan_table(t, sel, i, mapping) {
            Ok(p) => p,
            Err(why) => {
                planned.unplannable.push((t.name.clone(), why));
                continue;
            }
        };
        if let Some(prev) = targets.insert(plan.target.to_string(), t.name.to_string()) {
            return Err(format!(
                "tables {prev} and {} both become {} in PostgreSQL; map their schemas apart \
                 (mapping.schemas) or set mapping.identifier_case = \"preserve\"",
                t.name, plan.target
            ));
        }
        planned.plans.push(plan);
    }
    Ok(planned)
}

/// The selected tables: those planned, and those that cannot be (each with the reason, which
/// names the table and the column or setting). An unplannable table stops alone; the others run.
#[derive(Debug, Default)]
pub struct Planned {
    /// Plans in discovery order.
    pub plans: Vec<TablePlan>,
    /// Selected tables no plan could be made for, with the reason.
    pub unplannable: Vec<(TableName, String)>,
}

impl Planned {
    /// The hint an unplannable table's error carries.
    pub const HINT: &'static str = "set the column's type (tables[].columns.NAME.type, or \
        mapping.types) or exclude it, or name a key (tables[].key), then restart or reload";

    /// All plans, or the first table's reason when one cannot be planned (for commands that
    /// need every table: `schema`).
    pub fn all(self) -> Result<Vec<TablePlan>, String> {
        match self.unplannable.into_iter().next() {
            Some((_, why)) => Err(why),
            None => Ok(self.plans),
        }
    }
}

/// Values changed on their way because PostgreSQL cannot hold them, counted per column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Losses {
    /// (target column, what happened) to count.
    pub counts: BTreeMap<(String, LossKind), u64>,
}

/// What a lossy conversion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LossKind {
    /// NUL characters removed.
    NulStripped,
    /// NUL characters replaced.
    NulReplaced,
    /// Digits below a microsecond truncated.
    SubMicrosecondTruncated,
    /// A lone UTF-16 surrogate replaced by U+FFFD.
    LoneSurrogateReplaced,
    /// An xml value that is not well-formed written as NULL (`policies.invalid_xml = "null"`).
    XmlNulled,
}

impl LossKind {
    /// A stable label for status and logs.
    pub fn label(&self) -> &'static str {
        match self {
            LossKind::NulStripped => "nul_stripped",
            LossKind::NulReplaced => "nul_replaced",
            LossKind::SubMicrosecondTruncated => "sub_microsecond_truncated",
            LossKind::LoneSurrogateReplaced => "lone_surrogate_replaced",
            LossKind::XmlNulled => "xml_nulled",
        }
    }
}

impl Losses {
    /// Counts one occurrence.
    pub fn add(&mut self, column: &str, kind: LossKind) {
        *self.counts.entry((column.to_string(), kind)).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests;
