//! Rewrites a parsed T-SQL statement into PostgreSQL SQL.
//!
//! Mechanism: expressions are rewritten bottom-up (sqlparser's `visit_expressions_mut`); a node
//! that becomes PostgreSQL text is replaced by a *raw* node (an unquoted identifier whose value is
//! the text, which sqlparser prints verbatim) and its T-SQL type is remembered, so that parents can
//! still infer types (`+` on strings is `||`, uniqueidentifier comparisons use SQL Server's order).
//! Finally [`to_pg_text`] re-tokenises the printed statement and normalises identifiers: T-SQL
//! names are case-insensitive, so every quoted or non-ASCII name is lower-cased and double-quoted
//! (PostgreSQL folds unquoted ASCII names itself).

use crate::types::{Len, TsqlType};
use crate::value::{pg_literal, pg_quote, Value};
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, LimitClause, ObjectName, Query, SelectItem, SetExpr, Statement, TableFactor,
    Value as AstValue, VisitMut, VisitorMut,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// A T-SQL error raised while rewriting (number and message as SQL Server words them).
#[derive(Debug, Clone)]
pub struct RewriteError {
    /// SQL Server error number.
    pub number: i32,
    /// Message text.
    pub message: String,
}

/// Columns of one table: lower-cased name to declared type.
pub type TableColumns = Vec<(String, TsqlType)>;

/// What the rewriter knows about the session and the tables a statement touches.
#[derive(Default)]
pub struct Context {
    /// Variables in scope: lower-cased `@name` to declared type and current value.
    pub vars: HashMap<String, (TsqlType, Value)>,
    /// Tables by lower-cased `schema.table` (schema defaulted to dbo).
    pub tables: HashMap<String, TableColumns>,
    /// Values of session functions: `@@TRANCOUNT`, `@@ROWCOUNT`, `SCOPE_IDENTITY()`...
    pub session: HashMap<&'static str, Value>,
    /// Current database name.
    pub database: String,
    /// The table (PostgreSQL name) this session last inserted an identity value into.
    pub identity_table: Option<String>,
    /// Primary key columns (PostgreSQL name, declared type) of the tables named in
    /// CHANGETABLE(...), by the lower-cased name argument as written.
    pub ct_keys: HashMap<String, TableColumns>,
    /// CDC capture instances named in cdc.fn_cdc_get_*_changes_<ci>(...), by lower-cased name.
    pub cdc_instances: HashMap<String, CdcInstance>,
    /// Plain reads take shared row locks, so that they wait for uncommitted writers as SQL
    /// Server's locking READ COMMITTED does (READ_COMMITTED_SNAPSHOT off).
    pub locking_reads: bool,
}

const AGGREGATES: &[&str] = &[
    "count",
    "count_big",
    "sum",
    "min",
    "max",
    "avg",
    "string_agg",
    "stdev",
    "stdevp",
    "var",
    "varp",
    "checksum_agg",
    "grouping",
    "grouping_id",
    "approx_count_distinct",
];

fn has_aggregate_or_window(items: &[SelectItem]) -> bool {
    let mut found = false;
    for item in items {
        let _ = sqlparser::ast::visit_expressions(item, |e| {
            if let Expr::Function(f) = e {
                let name = f.name.to_string().to_lowercase();
                if f.over.is_some() || AGGREGATES.contains(&name.as_str()) {
                    found = true;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// Whether PostgreSQL can lock the rows a SELECT reads (`FOR SHARE`): one SELECT over user
/// tables, without aggregates, windows, DISTINCT, GROUP BY, set operations or NOLOCK.
fn can_lock_rows(stmt: &Statement) -> bool {
    let Statement::Query(q) = stmt else {
        return false;
    };
    if q.with.is_some() {
        return false;
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return false;
    };
    let grouped = match &sel.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, _) => !e.is_empty(),
        _ => true,
    };
    if sel.from.is_empty()
        || sel.distinct.is_some()
        || sel.having.is_some()
        || grouped
        || has_aggregate_or_window(&sel.projection)
    {
        return false;
    }
    let plain = |tf: &TableFactor| match tf {
        TableFactor::Table {
            name,
            args: None,
            with_hints,
            ..
        } => {
            let key = table_key(name);
            let system = key.starts_with("sys.") || key.starts_with("information_schema.");
            let dirty = with_hints.iter().any(|h| {
                let h = h.to_string().to_uppercase();
                h == "NOLOCK" || h == "READUNCOMMITTED" || h == "READPAST"
            });
            !system && !dirty
        }
        _ => false,
    };
    // PostgreSQL cannot lock the nullable side of an outer join.
    let inner = |j: &sqlparser::ast::Join| {
        matches!(
            j.join_operator,
            sqlparser::ast::JoinOperator::Join(_)
                | sqlparser::ast::JoinOperator::Inner(_)
                | sqlparser::ast::JoinOperator::CrossJoin(_)
        )
    };
    sel.from
        .iter()
        .all(|t| plain(&t.relation) && t.joins.iter().all(|j| plain(&j.relation) && inner(j)))
}

/// What the rewriter needs of a CDC capture instance.
#[derive(Debug, Clone, Default)]
pub struct CdcInstance {
    /// The change table as PostgreSQL names it (`cdc."dbo_orders_ct"`).
    pub change_table: String,
    /// Captured columns (PostgreSQL names) in capture order.
    pub columns: Vec<String>,
    /// Primary key columns (PostgreSQL names), for net changes.
    pub keys: Vec<String>,
}

/// The lower-cased `schema.table` key of an object name (database part ignored).
pub fn table_key(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => format!("dbo.{}", parts[0]),
        n => format!("{}.{}", parts[n - 2], parts[n - 1]),
    }
}

/// Every table a statement names (for loading their column types first).
pub fn referenced_tables(stmt: &mut Statement) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations_mut(stmt, |name| {
        out.push(table_key(name));
        ControlFlow::<()>::Continue(())
    });
    out.sort();
    out.dedup();
    out
}

fn raw(s: String) -> Expr {
    Expr::Identifier(Ident::new(s))
}

/// The inferred T-SQL type of one select-list item.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectType {
    /// An expression, with its type where it could be told and its name as the query wrote it
    /// (an alias, or a column reference's last part) with whether it is an alias.
    Expr(Option<TsqlType>, Option<(String, bool)>),
    /// `*` or `t.*`: expands to columns whose declared types PostgreSQL reports.
    Wildcard,
}

/// Inferred types of a top-level select list, mapped onto result columns by [`SelectTypes::column`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectTypes(pub Vec<SelectType>);

impl SelectTypes {
    /// The inferred type of result column `i` of `n`. Items before the first wildcard map to the
    /// first columns, items after the last wildcard to the last ones; columns a wildcard
    /// expanded to (or that cannot be placed) have none.
    pub fn column(&self, i: usize, n: usize) -> Option<TsqlType> {
        match self.item(i, n) {
            Some(SelectType::Expr(t, _)) => t.clone(),
            _ => None,
        }
    }

    /// The name result column `i` of `n` was written with, if any, and whether it is an alias
    /// (placed as [`Self::column`]).
    pub fn written_name(&self, i: usize, n: usize) -> Option<(String, bool)> {
        match self.item(i, n) {
            Some(SelectType::Expr(_, name)) => name.clone(),
            _ => None,
        }
    }

    fn item(&self, i: usize, n: usize) -> Option<&SelectType> {
        let items = &self.0;
        let first = items.iter().position(|t| *t == SelectType::Wildcard);
        let item = match first {
            None => items.get(i),
            Some(w) if i < w => items.get(i),
            Some(_) => {
                let last = items
                    .iter()
                    .rposition(|t| *t == SelectType::Wildcard)
                    .unwrap_or(0);
                let tail = items.len() - last - 1;
                if i + tail >= n && n >= tail {
                    items.get(last + 1 + (i + tail - n))
                } else {
                    None
                }
            }
        };
        item
    }
}

/// Rewrites statements; create one per statement.
pub struct Rewriter<'a> {
    ctx: &'a Context,
    /// Aliases in the statement: lower-cased alias to table key.
    aliases: HashMap<String, String>,
    raw_types: HashMap<String, TsqlType>,
    /// Columns of derived tables the rewriter creates (CHANGETABLE), by synthetic key.
    extra_tables: HashMap<String, TableColumns>,
    /// The first error met.
    pub error: Option<RewriteError>,
}

impl<'a> Rewriter<'a> {
    /// A rewriter over `ctx`.
    pub fn new(ctx: &'a Context) -> Self {
        Rewriter {
            ctx,
            aliases: HashMap::new(),
            raw_types: HashMap::new(),
            extra_tables: HashMap::new(),
            error: None,
        }
    }

    fn fail(&mut self, number: i32, message: String) {
        if self.error.is_none() {
            self.error = Some(RewriteError { number, message });
        }
    }

    fn typed_raw(&mut self, s: String, ty: Option<TsqlType>) -> Expr {
        if let Some(t) = ty {
            self.raw_types.insert(s.clone(), t);
        }
        raw(s)
    }

    /// Rewrites a statement in place and returns the result column types it could infer
    /// (for the top-level SELECT list; `None` entries fall back to the PostgreSQL type).
    pub fn rewrite(&mut self, stmt: &mut Statement) -> SelectTypes {
        self.collect_aliases(stmt);
        let lock_rows = self.ctx.locking_reads && can_lock_rows(stmt);
        let _ = stmt.visit(self);
        if lock_rows {
            if let Statement::Query(q) = stmt {
                q.locks.push(sqlparser::ast::LockClause {
                    lock_type: sqlparser::ast::LockType::Share,
                    of: None,
                    nonblock: None,
                });
            }
        }
        if let Err(e) = restructure_joined_dml(stmt) {
            self.fail(e.number, e.message);
        }
        let mut items = Vec::new();
        if let Statement::Query(q) = stmt {
            if let SetExpr::Select(sel) = q.body.as_ref() {
                for item in &sel.projection {
                    items.push(match item {
                        SelectItem::ExprWithAlias { expr, alias } => {
                            SelectType::Expr(self.type_of(expr), Some((alias.value.clone(), true)))
                        }
                        SelectItem::UnnamedExpr(e) => {
                            let name = match e {
                                Expr::Identifier(i) if !self.raw_types.contains_key(&i.value) => {
                                    Some((i.value.clone(), false))
                                }
                                Expr::CompoundIdentifier(parts) => {
                                    parts.last().map(|p| (p.value.clone(), false))
                                }
                                _ => None,
                            };
                            SelectType::Expr(self.type_of(e), name)
                        }
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                            SelectType::Wildcard
                        }
                        _ => SelectType::Expr(None, None),
                    });
                }
            }
        }
        SelectTypes(items)
    }

    fn collect_aliases(&mut self, stmt: &Statement) {
        struct Aliases(HashMap<String, String>);
        impl sqlparser::ast::Visitor for Aliases {
            type Break = ();
            fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table { name, alias, .. } = tf {
                    let key = table_key(name);
                    if let Some(a) = alias {
                        self.0.insert(a.name.value.to_lowercase(), key.clone());
                    }
                    let short = key.rsplit('.').next().unwrap_or("").to_string();
                    self.0.entry(short).or_insert(key);
                }
                ControlFlow::Continue(())
            }
        }
        let mut v = Aliases(HashMap::new());
        let _ = sqlparser::ast::Visit::visit(stmt, &mut v);
        self.aliases = v.0;
        // CHANGETABLE aliases name derived tables with CT's columns and the table's key.
        for (alias, kind, name) in changetable_aliases(stmt) {
            let key = format!("changetable:{alias}");
            let mut cols: TableColumns = vec![("sys_change_version".into(), TsqlType::BigInt)];
            if kind == "CHANGES" {
                cols.push(("sys_change_creation_version".into(), TsqlType::BigInt));
                cols.push(("sys_change_operation".into(), TsqlType::NChar(1)));
                cols.push((
                    "sys_change_columns".into(),
                    TsqlType::VarBinary(Len::N(4100)),
                ));
            }
            cols.push((
                "sys_change_context".into(),
                TsqlType::VarBinary(Len::N(128)),
            ));
            cols.extend(
                self.ctx
                    .ct_keys
                    .get(&name.to_lowercase())
                    .cloned()
                    .unwrap_or_default(),
            );
            self.aliases.insert(alias, key.clone());
            self.extra_tables.insert(key, cols);
        }
    }

    fn column_type(&self, qualifier: Option<&str>, col: &str) -> Option<TsqlType> {
        let col = col.to_lowercase();
        let find = |key: &str| -> Option<TsqlType> {
            self.ctx
                .tables
                .get(key)
                .or_else(|| self.extra_tables.get(key))?
                .iter()
                .find(|(n, _)| *n == col)
                .map(|(_, t)| t.clone())
        };
        match qualifier {
            Some(q) => {
                let q = q.to_lowercase();
                let key = self
                    .aliases
                    .get(&q)
                    .cloned()
                    .unwrap_or_else(|| format!("dbo.{q}"));
                find(&key)
            }
            None => self.aliases.values().find_map(|k| find(k)),
        }
    }

    /// The T-SQL type of an expression where it can be told.
    pub fn type_of(&self, e: &Expr) -> Option<TsqlType> {
        match e {
            Expr::Identifier(i)
                if i.quote_style.is_none() && self.raw_types.contains_key(&i.value) =>
            {
                self.raw_types.get(&i.value).cloned()
            }
            Expr::Identifier(i) => self.column_type(None, &i.value),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let n = parts.len();
                self.column_type(Some(&parts[n - 2].value), &parts[n - 1].value)
            }
            Expr::Value(v) => match &v.value {
                AstValue::SingleQuotedString(s) => Some(TsqlType::VarChar(Len::N(
                    s.chars().count().clamp(1, 8000) as u16,
                ))),
                AstValue::NationalStringLiteral(s) => Some(TsqlType::NVarChar(Len::N(
                    s.chars().count().clamp(1, 4000) as u16,
                ))),
                AstValue::Number(n, _) => {
                    if n.contains('.') {
                        let scale = n.split('.').nth(1).map(|f| f.len()).unwrap_or(0) as u8;
                        Some(TsqlType::Decimal {
                            precision: (n.len() as u8).clamp(1, 38),
                            scale: scale.min(38),
                            numeric: true,
                        })
                    } else if n.parse::<i32>().is_ok() {
                        Some(TsqlType::Int)
                    } else {
                        Some(TsqlType::BigInt)
                    }
                }
                _ => None,
            },
            Expr::Nested(inner) => self.type_of(inner),
            // T-SQL's SUM, MIN, MAX and AVG keep the argument's type (AVG of int is an int).
            Expr::Function(f)
                if matches!(
                    f.name.to_string().to_lowercase().as_str(),
                    "sum" | "min" | "max" | "avg"
                ) =>
            {
                match &f.args {
                    FunctionArguments::List(l) => match l.args.first() {
                        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => {
                            match self.type_of(e)? {
                                TsqlType::TinyInt | TsqlType::SmallInt
                                    if f.name.to_string().eq_ignore_ascii_case("sum") =>
                                {
                                    Some(TsqlType::Int)
                                }
                                TsqlType::Decimal { scale, numeric, .. }
                                    if f.name.to_string().eq_ignore_ascii_case("sum") =>
                                {
                                    Some(TsqlType::Decimal {
                                        precision: 38,
                                        scale,
                                        numeric,
                                    })
                                }
                                t => Some(t),
                            }
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }
            Expr::Cast { data_type, .. } => TsqlType::parse(&data_type.to_string()).ok(),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::StringConcat,
                ..
            } => self.type_of(left).map(|_| TsqlType::NVarChar(Len::Max)),
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide,
                right,
            } => match (self.type_of(left), self.type_of(right)) {
                // Only when both sides agree; otherwise PostgreSQL's result type says more.
                (Some(l), Some(r)) if l == r => Some(l),
                _ => None,
            },
            _ => None,
        }
    }

    /// SCOPE_IDENTITY() / @@IDENTITY: read from the session's sequence state when referenced.
    fn identity_sql(&self) -> String {
        match &self.ctx.identity_table {
            Some(t) => format!("_sim.scope_identity({})", pg_quote(t)),
            None => "CAST(NULL AS numeric(38,0))".into(),
        }
    }

    fn var(&mut self, name: &str) -> Expr {
        let lower = name.to_lowercase();
        if let Some(rest) = lower.strip_prefix("@@") {
            let key: &'static str = match rest {
                "trancount" => "@@TRANCOUNT",
                "rowcount" => "@@ROWCOUNT",
                "identity" => {
                    return self.typed_raw(
                        self.identity_sql(),
                        Some(TsqlType::Decimal {
                            precision: 38,
                            scale: 0,
                            numeric: true,
                        }),
                    )
                }
                "version" => "@@VERSION",
                "spid" => "@@SPID",
                "servername" => "@@SERVERNAME",
                "error" => "@@ERROR",
                "language" => "@@LANGUAGE",
                "servicename" => "@@SERVICENAME",
                "options" => "@@OPTIONS",
                "max_precision" => "@@MAX_PRECISION",
                "textsize" => "@@TEXTSIZE",
                "datefirst" => "@@DATEFIRST",
                "lock_timeout" => "@@LOCK_TIMEOUT",
                "microsoftversion" => "@@MICROSOFTVERSION",
                "fetch_status" => "@@FETCH_STATUS",
                "dbts" => {
                    return self.typed_raw(
                        "(SELECT last_value FROM _sim.rowversion)".into(),
                        Some(TsqlType::RowVersion),
                    )
                }
                _ => {
                    self.fail(
                        195,
                        format!("'{name}' is not a recognized built-in function name."),
                    );
                    return raw("NULL".into());
                }
            };
            let v = self.ctx.session.get(key).cloned().unwrap_or(Value::Null);
            let ty = match key {
                "@@VERSION" | "@@SERVERNAME" | "@@LANGUAGE" | "@@SERVICENAME" => {
                    TsqlType::NVarChar(Len::N(300))
                }
                "@@IDENTITY" => TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                },
                "@@ROWCOUNT" | "@@TRANCOUNT" | "@@ERROR" | "@@OPTIONS" | "@@TEXTSIZE"
                | "@@LOCK_TIMEOUT" | "@@MICROSOFTVERSION" | "@@FETCH_STATUS" => TsqlType::Int,
                _ => TsqlType::SmallInt,
            };
            return self.typed_raw(typed_literal(&v, &ty), Some(ty));
        }
        match self.ctx.vars.get(&lower) {
            Some((ty, v)) => {
                let (ty, v) = (ty.clone(), v.clone());
                self.typed_raw(typed_literal(&v, &ty), Some(ty))
            }
            None => {
                self.fail(137, format!("Must declare the scalar variable \"{name}\"."));
                raw("NULL".into())
            }
        }
    }

    fn func(&mut self, f: &sqlparser::ast::Function) -> Option<Expr> {
        let name = f.name.to_string().to_lowercase();
        let name = name
            .trim_start_matches("dbo.")
            .trim_start_matches("sys.")
            .to_string();
        let args: Vec<String> = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e.to_string(),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => "*".into(),
                    other => other.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let arg_exprs: Vec<&Expr> = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let a = |i: usize| args.get(i).cloned().unwrap_or_else(|| "NULL".into());
        let dt2 = Some(TsqlType::DateTime2(7));
        let (sql, ty): (String, Option<TsqlType>) = match name.as_str() {
            "isnull" => (
                format!("COALESCE({}, {})", a(0), a(1)),
                arg_exprs.first().and_then(|e| self.type_of(e)),
            ),
            "len" => (format!("_sim.len({})", a(0)), Some(TsqlType::Int)),
            "datalength" => (format!("_sim.datalength({})", a(0)), Some(TsqlType::Int)),
            "getdate" | "current_timestamp" => ("_sim.getdate()".into(), Some(TsqlType::DateTime)),
            "getutcdate" => ("_sim.getutcdate()".into(), Some(TsqlType::DateTime)),
            "sysdatetime" => ("_sim.sysdatetime()".into(), dt2),
            "sysutcdatetime" => ("_sim.sysutcdatetime()".into(), dt2),
            "sysdatetimeoffset" => (
                "_sim.sysdatetimeoffset()".into(),
                Some(TsqlType::DateTimeOffset(7)),
            ),
            "newid" | "newsequentialid" => {
                ("gen_random_uuid()".into(), Some(TsqlType::UniqueIdentifier))
            }
            "scope_identity" => (self.identity_sql(), Some(TsqlType::Decimal { precision: 38, scale: 0, numeric: true })),
            "ident_current" => (
                format!("_sim.ident_current({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "ident_seed" => (
                format!("_sim.ident_seed({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "ident_incr" => (
                format!("_sim.ident_incr({})", a(0)),
                Some(TsqlType::Decimal {
                    precision: 38,
                    scale: 0,
                    numeric: true,
                }),
            ),
            "object_id" => (format!("_sim.object_id({})", a(0)), Some(TsqlType::Int)),
            "object_name" => (
                format!("_sim.object_name({})", a(0)),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "schema_name" => (
                if args.is_empty() {
                    "'dbo'".into()
                } else {
                    format!("_sim.schema_name({})", a(0))
                },
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "schema_id" => (
                if args.is_empty() {
                    "1".into()
                } else {
                    format!("_sim.schema_id({})", a(0))
                },
                Some(TsqlType::Int),
            ),
            "db_name" => (
                pg_quote(&self.ctx.database),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "db_id" => (
                format!(
                    "_sim.db_id({})",
                    if args.is_empty() {
                        pg_quote(&self.ctx.database)
                    } else {
                        a(0)
                    }
                ),
                Some(TsqlType::SmallInt),
            ),
            "columnproperty" => (
                format!("_sim.columnproperty({}, {}, {})", a(0), a(1), a(2)),
                Some(TsqlType::Int),
            ),
            "objectproperty" => (
                format!("_sim.objectproperty({}, {})", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "serverproperty" => (
                format!("_sim.serverproperty({})", a(0)),
                Some(TsqlType::SqlVariant),
            ),
            "databasepropertyex" => (
                format!("_sim.databasepropertyex({}, {})", a(0), a(1)),
                Some(TsqlType::SqlVariant),
            ),
            "type_name" => (
                format!("_sim.type_name({})", a(0)),
                Some(TsqlType::NVarChar(Len::N(128))),
            ),
            "hashbytes" => {
                let data = match arg_exprs.get(1).and_then(|e| self.type_of(e)) {
                    Some(TsqlType::VarChar(_) | TsqlType::Char(_) | TsqlType::Text) => {
                        format!("_sim.cp1252({})", a(1))
                    }
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image) => a(1),
                    _ => format!("_sim.utf16le(({})::text)", a(1)),
                };
                (
                    format!("_sim.hashbytes({}, {})", a(0), data),
                    Some(TsqlType::VarBinary(Len::N(8000))),
                )
            }
            "checksum" | "binary_checksum" => (
                format!("_sim.checksum(concat_ws('|', {}))", args.join(", ")),
                Some(TsqlType::Int),
            ),
            "charindex" => (
                if args.len() > 2 {
                    format!("_sim.charindex({}, {}, {})", a(0), a(1), a(2))
                } else {
                    format!("_sim.charindex({}, {}, 1)", a(0), a(1))
                },
                Some(TsqlType::Int),
            ),
            "replicate" => (format!("repeat({}, {})", a(0), a(1)), None),
            "space" => (format!("repeat(' ', {})", a(0)), None),
            "ceiling" => (format!("ceil({})", a(0)), None),
            "rand" => ("random()".into(), Some(TsqlType::Float)),
                        "min" | "max"
                if matches!(
                    arg_exprs.first().and_then(|e| self.type_of(e)),
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::UniqueIdentifier)
                ) =>
            {
                (format!("_sim.{name}({})", a(0)), arg_exprs.first().and_then(|e| self.type_of(e)))
            }
            "count_big" => (
                format!("count({})", args.join(", ")),
                Some(TsqlType::BigInt),
            ),
            "count" => (
                format!("count({})::int", args.join(", ")),
                Some(TsqlType::Int),
            ),
            "iif" => (
                format!("CASE WHEN {} THEN {} ELSE {} END", a(0), a(1), a(2)),
                None,
            ),
            "isnumeric" => (format!("_sim.isnumeric({})", a(0)), Some(TsqlType::Int)),
            "nchar" => (format!("_sim.nchar({})", a(0)), Some(TsqlType::NChar(1))),
            "char" => (format!("_sim.char({})", a(0)), Some(TsqlType::Char(1))),
            "ascii" => (format!("_sim.ascii({})", a(0)), Some(TsqlType::Int)),
            "unicode" => (format!("_sim.unicode({})", a(0)), Some(TsqlType::Int)),
            "year" | "month" | "day" => (
                format!("_sim.datepart('{}', {})", name, a(0)),
                Some(TsqlType::Int),
            ),
            "dateadd" | "datediff" | "datediff_big" | "datepart" | "datename" => {
                let part = arg_exprs
                    .first()
                    .map(|e| e.to_string().to_lowercase())
                    .unwrap_or_default();
                let part = part.trim_matches(|c| c == '\'' || c == '"');
                let rest: Vec<String> = args.iter().skip(1).cloned().collect();
                let ty = match name.as_str() {
                    "dateadd" => arg_exprs.get(2).and_then(|e| self.type_of(e)).or(dt2),
                    "datename" => Some(TsqlType::NVarChar(Len::N(30))),
                    "datediff_big" => Some(TsqlType::BigInt),
                    _ => Some(TsqlType::Int),
                };
                let fname = if name == "datediff_big" {
                    "datediff"
                } else {
                    name.as_str()
                };
                (format!("_sim.{fname}('{part}', {})", rest.join(", ")), ty)
            }
            "eomonth" => (format!("_sim.eomonth({})", a(0)), Some(TsqlType::Date)),
            "sysdatetime_ticks" => return None,
            "change_tracking_current_version" => {
                ("_sim.ct_current_version()".into(), Some(TsqlType::BigInt))
            }
            "fn_cdc_is_bit_set" => (format!("_sim.cdc_is_bit_set({}, {})", a(0), a(1)), Some(TsqlType::Bit)),
            "fn_cdc_get_column_ordinal" => (
                format!("(SELECT cc.column_ordinal FROM cdc.captured_columns cc JOIN cdc.change_tables ct ON ct.object_id = cc.object_id WHERE ct.capture_instance = {} AND lower(cc.column_name) = lower({}))", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "fn_cdc_has_column_changed" => (
                format!("_sim.cdc_is_bit_set((SELECT cc.column_ordinal FROM cdc.captured_columns cc JOIN cdc.change_tables ct ON ct.object_id = cc.object_id WHERE ct.capture_instance = {} AND lower(cc.column_name) = lower({})), {})", a(0), a(1), a(2)),
                Some(TsqlType::Bit),
            ),
            "change_tracking_is_column_in_mask" => (
                format!("_sim.ct_column_in_mask({}, {})", a(0), a(1)),
                Some(TsqlType::Int),
            ),
            "change_tracking_min_valid_version" => (
                format!("_sim.ct_min_valid_version({})", a(0)),
                Some(TsqlType::BigInt),
            ),
            "fn_cdc_get_max_lsn" => ("_sim.cdc_max_lsn()".into(), Some(TsqlType::Binary(10))),
            "fn_cdc_get_min_lsn" => (
                format!("_sim.cdc_min_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_increment_lsn" => (
                format!("_sim.cdc_increment_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_decrement_lsn" => (
                format!("_sim.cdc_decrement_lsn({})", a(0)),
                Some(TsqlType::Binary(10)),
            ),
            "fn_cdc_map_lsn_to_time" => (
                format!("_sim.cdc_map_lsn_to_time({})", a(0)),
                Some(TsqlType::DateTime),
            ),
            _ => return None,
        };
        Some(self.typed_raw(sql, ty))
    }

    fn cast(&mut self, expr: &Expr, dt: &DataType, style: Option<&Expr>) -> Expr {
        let ty = match TsqlType::parse(&dt.to_string()) {
            Ok(t) => t,
            Err(e) => {
                self.fail(243, e.0);
                return raw("NULL".into());
            }
        };
        let inner = expr.to_string();
        let sql = match (&ty, style) {
            (t, Some(style)) if t.is_string() => format!("_sim.convert_text(({inner}), {style})"),
            (TsqlType::DateTime2(_), _) => format!("_sim.to_datetime2({inner})"),
            (TsqlType::DateTimeOffset(_), _) => format!("_sim.to_datetimeoffset({inner})"),
            (TsqlType::Time(_), _) => format!("_sim.to_time({inner})"),
            (TsqlType::Bit, _) => format!("_sim.to_bit({inner})"),
            (TsqlType::VarBinary(_) | TsqlType::Binary(_), _) => {
                format!("_sim.to_varbinary({inner})")
            }
            (t, _) => {
                let storage = t.pg_storage();
                let storage = storage
                    .split(" COLLATE")
                    .next()
                    .unwrap_or(&storage)
                    .to_string();
                format!("CAST(({inner}) AS {storage})")
            }
        };
        self.typed_raw(sql, Some(ty))
    }

    fn post_expr(&mut self, e: &mut Expr) {
        let replacement = match e {
            Expr::Identifier(i) if i.quote_style.is_none() && i.value.starts_with('@') => {
                Some(self.var(&i.value.clone()))
            }
            Expr::Function(f) => {
                let f = f.clone();
                self.func(&f)
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                let (ex, dt) = ((**expr).clone(), data_type.clone());
                Some(self.cast(&ex, &dt, None))
            }
            Expr::Convert {
                expr,
                data_type: Some(dt),
                styles,
                ..
            } => {
                let (ex, dt, st) = ((**expr).clone(), dt.clone(), styles.first().cloned());
                Some(self.cast(&ex, &dt, st.as_ref()))
            }
            Expr::BinaryOp { left, op, right } => {
                let (lt, rt) = (self.type_of(left), self.type_of(right));
                match op {
                    BinaryOperator::Plus
                        if lt.as_ref().is_some_and(|t| t.is_string())
                            || rt.as_ref().is_some_and(|t| t.is_string()) =>
                    {
                        *op = BinaryOperator::StringConcat;
                        let t = Some(TsqlType::NVarChar(Len::Max));
                        let s = format!("({left} || {right})");
                        Some(self.typed_raw(s, t))
                    }
                    BinaryOperator::Gt
                    | BinaryOperator::Lt
                    | BinaryOperator::GtEq
                    | BinaryOperator::LtEq
                        if lt == Some(TsqlType::UniqueIdentifier)
                            || rt == Some(TsqlType::UniqueIdentifier) =>
                    {
                        Some(raw(format!(
                            "(_sim.guid_key({left}) {op} _sim.guid_key({right}))"
                        )))
                    }
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Gt
                    | BinaryOperator::Lt
                    | BinaryOperator::GtEq
                    | BinaryOperator::LtEq => {
                        let (l, r) = (left.to_string(), right.to_string());
                        temporal_pair(lt.as_ref(), rt.as_ref(), &l, &r)
                            .map(|(l, r)| raw(format!("({l} {op} {r})")))
                    }
                    _ => None,
                }
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let ty = self.type_of(expr);
                let (e, lo, hi) = (expr.to_string(), low.to_string(), high.to_string());
                match (
                    temporal_pair(ty.as_ref(), None, &e, &lo),
                    temporal_pair(ty.as_ref(), None, &e, &hi),
                ) {
                    (Some((e, lo)), Some((_, hi))) => {
                        let not = if *negated { "NOT " } else { "" };
                        Some(raw(format!("({e} {not}BETWEEN {lo} AND {hi})")))
                    }
                    _ => None,
                }
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                ..
            } => {
                let esc = escape_char
                    .as_ref()
                    .map(|c| format!(" ESCAPE {c}"))
                    .unwrap_or_default();
                let not = if *negated { "NOT " } else { "" };
                Some(raw(format!(
                    "(({expr})::text COLLATE _sim.bin {not}ILIKE ({pattern}){esc})"
                )))
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *e = r;
        }
    }
}

fn factor_matches(tf: &TableFactor, target: &str) -> bool {
    match tf {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(a) => a.name.value.eq_ignore_ascii_case(target),
            None => table_key(name)
                .rsplit('.')
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case(target)),
        },
        _ => false,
    }
}

fn and(a: Option<Expr>, b: Expr) -> Option<Expr> {
    Some(match a {
        Some(a) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(a))),
            op: BinaryOperator::And,
            right: Box::new(Expr::Nested(Box::new(b))),
        },
        None => b,
    })
}

/// The join condition of an inner or cross join; outer joins cannot move into WHERE.
fn inner_condition(
    op: &sqlparser::ast::JoinOperator,
    target: &str,
) -> Result<Option<Expr>, RewriteError> {
    use sqlparser::ast::{JoinConstraint, JoinOperator as J};
    match op {
        J::Join(c) | J::Inner(c) | J::CrossJoin(c) => match c {
            JoinConstraint::On(e) => Ok(Some(e.clone())),
            JoinConstraint::None => Ok(None),
            other => Err(RewriteError { number: 40000, message: format!("join constraint {other:?} on the target '{target}' is not supported by the simulator") }),
        },
        _ => Err(RewriteError {
            number: 40000,
            message: format!("an outer join of the UPDATE/DELETE target '{target}' is not supported by the simulator; use EXISTS or an inner join"),
        }),
    }
}

/// The target's table factor, the other FROM items, and the join conditions for WHERE.
type ExtractedTarget = (TableFactor, Vec<sqlparser::ast::TableWithJoins>, Vec<Expr>);

/// Takes the target table out of a T-SQL FROM list (`UPDATE t ... FROM t JOIN u ON c`): returns
/// the target's table factor, the remaining FROM items, and the join conditions to AND into WHERE.
fn extract_target(
    from: Vec<sqlparser::ast::TableWithJoins>,
    target: &str,
) -> Result<Option<ExtractedTarget>, RewriteError> {
    let mut found = None;
    let mut rest = Vec::new();
    let mut conds = Vec::new();
    for mut twj in from {
        if found.is_none() && factor_matches(&twj.relation, target) {
            found = Some(twj.relation.clone());
            if !twj.joins.is_empty() {
                let first = twj.joins.remove(0);
                if let Some(c) = inner_condition(&first.join_operator, target)? {
                    conds.push(c);
                }
                twj.relation = first.relation;
                rest.push(twj);
            }
            continue;
        }
        if found.is_none() {
            if let Some(pos) = twj
                .joins
                .iter()
                .position(|j| factor_matches(&j.relation, target))
            {
                let j = twj.joins.remove(pos);
                if let Some(c) = inner_condition(&j.join_operator, target)? {
                    conds.push(c);
                }
                found = Some(j.relation);
            }
        }
        rest.push(twj);
    }
    Ok(found.map(|f| (f, rest, conds)))
}

/// T-SQL's joined UPDATE and DELETE forms, restated as PostgreSQL's UPDATE ... FROM and
/// DELETE ... USING with the join conditions in WHERE.
fn restructure_joined_dml(stmt: &mut Statement) -> Result<(), RewriteError> {
    match stmt {
        Statement::Update(u) => {
            // SET t.a = ... names the column only (PostgreSQL refuses the qualifier).
            for a in u.assignments.iter_mut() {
                if let sqlparser::ast::AssignmentTarget::ColumnName(n) = &mut a.target {
                    if n.0.len() > 1 {
                        let last = n.0.pop();
                        n.0 = last.into_iter().collect();
                    }
                }
            }
            let Some(sqlparser::ast::UpdateTableFromKind::AfterSet(from)) = u.from.take() else {
                return Ok(());
            };
            let target = match &u.table.relation {
                TableFactor::Table {
                    name, alias: None, ..
                } if u.table.joins.is_empty() => {
                    table_key(name).rsplit('.').next().unwrap_or("").to_string()
                }
                _ => {
                    u.from = Some(sqlparser::ast::UpdateTableFromKind::AfterSet(from));
                    return Ok(());
                }
            };
            match extract_target(from.clone(), &target)? {
                Some((factor, rest, conds)) => {
                    u.table.relation = factor;
                    u.from = if rest.is_empty() {
                        None
                    } else {
                        Some(sqlparser::ast::UpdateTableFromKind::AfterSet(rest))
                    };
                    for c in conds {
                        u.selection = and(u.selection.take(), c);
                    }
                }
                None => u.from = Some(sqlparser::ast::UpdateTableFromKind::AfterSet(from)),
            }
            Ok(())
        }
        Statement::Delete(d) if d.tables.len() == 1 => {
            let target = table_key(&d.tables[0])
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_string();
            let from = match std::mem::replace(
                &mut d.from,
                sqlparser::ast::FromTable::WithFromKeyword(vec![]),
            ) {
                sqlparser::ast::FromTable::WithFromKeyword(f)
                | sqlparser::ast::FromTable::WithoutKeyword(f) => f,
            };
            match extract_target(from, &target)? {
                Some((factor, rest, conds)) => {
                    d.tables.clear();
                    d.from = sqlparser::ast::FromTable::WithFromKeyword(vec![
                        sqlparser::ast::TableWithJoins {
                            relation: factor,
                            joins: vec![],
                        },
                    ]);
                    d.using = if rest.is_empty() { None } else { Some(rest) };
                    for c in conds {
                        d.selection = and(d.selection.take(), c);
                    }
                    Ok(())
                }
                None => Err(RewriteError {
                    number: 208,
                    message: format!("Invalid object name '{target}'."),
                }),
            }
        }
        _ => Ok(()),
    }
}

/// The parts of a `CHANGETABLE('CHANGES'|'VERSION', 'name', ...)` table factor (the pre-pass form).
fn changetable_call(tf: &TableFactor) -> Option<(String, String, Vec<Expr>)> {
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = tf
    else {
        return None;
    };
    if !name.to_string().eq_ignore_ascii_case("changetable") {
        return None;
    }
    let exprs: Vec<Expr> = args
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let text = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            AstValue::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let kind = text(exprs.first()?)?;
    let target = text(exprs.get(1)?)?;
    Some((kind, target, exprs[2..].to_vec()))
}

/// (alias, kind, table name) of every CHANGETABLE in a statement.
fn changetable_aliases(stmt: &Statement) -> Vec<(String, String, String)> {
    struct V(Vec<(String, String, String)>);
    impl sqlparser::ast::Visitor for V {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let (Some((kind, name, _)), TableFactor::Table { alias, .. }) =
                (changetable_call(tf), tf)
            {
                let alias = alias
                    .as_ref()
                    .map(|a| a.name.value.to_lowercase())
                    .unwrap_or_else(|| "changetable".into());
                self.0.push((alias, kind, name));
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(Vec::new());
    let _ = sqlparser::ast::Visit::visit(stmt, &mut v);
    v.0
}

/// Replaces a table-function factor by derived-table SQL, keeping (or supplying, as PostgreSQL
/// requires one) its alias.
fn replace_with_derived(tf: &mut TableFactor, sql: String) {
    if let TableFactor::Table {
        name, args, alias, ..
    } = tf
    {
        if alias.is_none() {
            let fallback = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
                .unwrap_or_else(|| "derived".into());
            *alias = Some(sqlparser::ast::TableAlias {
                explicit: true,
                name: Ident::with_quote('"', fallback),
                columns: vec![],
                at: None,
            });
        }
        *name = ObjectName::from(vec![Ident::new(sql)]);
        *args = None;
    }
}

/// `cdc.fn_cdc_get_all_changes_<ci>(from, to, option)` or `..._net_changes_<ci>`: (net, ci, args).
fn cdc_function_call(tf: &TableFactor) -> Option<(bool, String, Vec<Expr>)> {
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = tf
    else {
        return None;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    let last = parts.last()?.to_lowercase();
    let (net, ci) = if let Some(ci) = last.strip_prefix("fn_cdc_get_all_changes_") {
        (false, ci.to_string())
    } else if let Some(ci) = last.strip_prefix("fn_cdc_get_net_changes_") {
        (true, ci.to_string())
    } else {
        return None;
    };
    let exprs = args
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    Some((net, ci, exprs))
}

/// The capture instances a statement's CDC change functions read (to load them first).
pub fn cdc_function_instances(stmt: &Statement) -> Vec<String> {
    struct V(Vec<String>);
    impl sqlparser::ast::Visitor for V {
        type Break = ();
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let Some((_, ci, _)) = cdc_function_call(tf) {
                self.0.push(ci);
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(Vec::new());
    let _ = sqlparser::ast::Visit::visit(stmt, &mut v);
    v.0
}

/// The table names a statement's CHANGETABLE calls read (to load their keys first).
pub fn changetable_targets(stmt: &Statement) -> Vec<String> {
    changetable_aliases(stmt)
        .into_iter()
        .map(|(_, _, name)| name)
        .collect()
}

/// A stored primary key value (jsonb text) cast back to its column's storage type.
fn key_cast(col: &str, ty: &TsqlType) -> String {
    let storage = ty.pg_storage();
    let (base, collate) = match storage.split_once(" COLLATE ") {
        Some((b, c)) => (b.to_string(), format!(" COLLATE {c}")),
        None => (storage.clone(), String::new()),
    };
    format!(
        "CAST(jsonb_extract_path_text(x.pk, {}) AS {base}){collate} AS {}",
        pg_quote(col),
        pg_ident_lower(col)
    )
}

fn pg_ident_lower(name: &str) -> String {
    format!("\"{}\"", name.to_lowercase().replace('"', "\"\""))
}

impl Rewriter<'_> {
    /// The derived table that stands for a CDC change function: all changes in LSN order
    /// ('all' gives only after-images of updates, 'all update old' both), or net changes (the
    /// final operation per key over the window).
    fn cdc_changes_sql(&self, net: bool, ci: &str, args: &[Expr]) -> Result<String, RewriteError> {
        let inst = self.ctx.cdc_instances.get(ci).ok_or_else(|| RewriteError {
            number: 208,
            message: format!(
                "Invalid object name 'cdc.fn_cdc_get_{}_changes_{ci}'.",
                if net { "net" } else { "all" }
            ),
        })?;
        if args.len() != 3 {
            return Err(RewriteError {
                number: 313,
                message: format!("An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_{ci}."),
            });
        }
        let (from, to, opt) = (
            args[0].to_string(),
            args[1].to_string(),
            args[2].to_string(),
        );
        let check = format!("_sim.cdc_check_range({}, {from}, {to})", pg_quote(ci));
        let range = format!("c.\"__$start_lsn\" BETWEEN {from} AND {to}");
        let cols: Vec<String> = inst
            .columns
            .iter()
            .map(|c| format!("x.{}", pg_ident_lower(c)))
            .collect();
        let t = &inst.change_table;
        if !net {
            return Ok(format!(
                "(SELECT x.\"__$start_lsn\", x.\"__$seqval\", x.\"__$operation\", x.\"__$update_mask\", {} FROM {t} AS x \
                 WHERE {check} AND x.\"__$start_lsn\" BETWEEN {from} AND {to} \
                 AND (x.\"__$operation\" <> 3 OR lower({opt}) = 'all update old') \
                 ORDER BY x.\"__$start_lsn\", x.\"__$command_id\", x.\"__$seqval\", x.\"__$operation\")",
                cols.join(", ")
            ));
        }
        if inst.keys.is_empty() {
            return Err(RewriteError {
                number: 22948,
                message: format!("Capture instance '{ci}' does not support net changes."),
            });
        }
        let keys: Vec<String> = inst.keys.iter().map(|k| pg_ident_lower(k)).collect();
        Ok(format!(
            "(SELECT x.\"__$start_lsn\", CASE WHEN x.\"__$operation\" = 1 THEN 1 WHEN x.first_op = 2 THEN 2 ELSE 4 END AS \"__$operation\", \
             CASE WHEN lower({opt}) LIKE '%mask%' THEN x.\"__$update_mask\" END AS \"__$update_mask\", {} FROM \
             (SELECT c.*, row_number() OVER (PARTITION BY {k} ORDER BY c.\"__$start_lsn\" DESC, c.\"__$seqval\" DESC, c.\"__$operation\" DESC) AS rn, \
              first_value(c.\"__$operation\") OVER (PARTITION BY {k} ORDER BY c.\"__$start_lsn\", c.\"__$seqval\", c.\"__$operation\") AS first_op \
              FROM {t} AS c WHERE {check} AND {range} AND c.\"__$operation\" IN (1, 2, 4)) AS x \
             WHERE x.rn = 1 AND NOT (x.first_op = 2 AND x.\"__$operation\" = 1))",
            cols.join(", "),
            k = keys.iter().map(|k| format!("c.{k}")).collect::<Vec<_>>().join(", "),
        ))
    }

    /// The derived table that stands for CHANGETABLE(CHANGES t, v) or CHANGETABLE(VERSION t, (cols), (vals)).
    fn changetable_sql(
        &self,
        kind: &str,
        name: &str,
        rest: &[Expr],
    ) -> Result<String, RewriteError> {
        let keys = self
            .ctx
            .ct_keys
            .get(&name.to_lowercase())
            .ok_or_else(|| RewriteError {
                number: 22105,
                message: format!("Change tracking is not enabled on table '{name}'."),
            })?;
        let object = format!("_sim.object_id({})", pg_quote(name));
        let key_cols: Vec<String> = keys.iter().map(|(c, t)| key_cast(c, t)).collect();
        match kind {
            "CHANGES" => {
                let since = rest
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "NULL".into());
                Ok(format!(
                    "(SELECT x.version AS sys_change_version, x.creation_version AS sys_change_creation_version, x.op AS sys_change_operation, \
                     x.columns AS sys_change_columns, x.context AS sys_change_context, {} FROM _sim.ct_changes({object}, CAST(({since}) AS bigint)) AS x)",
                    key_cols.join(", ")
                ))
            }
            "VERSION" => {
                let list = |e: Option<&Expr>| -> Vec<String> {
                    match e {
                        Some(Expr::Tuple(items)) => items.iter().map(|i| i.to_string()).collect(),
                        Some(Expr::Nested(inner)) => vec![inner.to_string()],
                        Some(other) => vec![other.to_string()],
                        None => vec![],
                    }
                };
                let (cols, vals) = (list(rest.first()), list(rest.get(1)));
                if cols.len() != vals.len() || cols.len() != keys.len() {
                    return Err(RewriteError { number: 22107, message: format!("CHANGETABLE(VERSION {name}, ...) needs every primary key column and a value for each.") });
                }
                let pairs: Vec<String> = cols
                    .iter()
                    .zip(&vals)
                    .map(|(c, v)| format!("{}, {v}", pg_quote(&c.trim_matches('"').to_lowercase())))
                    .collect();
                let outs: Vec<String> = keys
                    .iter()
                    .zip(&vals)
                    .map(|((c, _), v)| format!("{v} AS {}", pg_ident_lower(c)))
                    .collect();
                Ok(format!(
                    "(SELECT x.version AS sys_change_version, x.context AS sys_change_context, {} FROM _sim.ct_key_version({object}, jsonb_build_object({})) AS x)",
                    outs.join(", "),
                    pairs.join(", ")
                ))
            }
            other => Err(RewriteError {
                number: 102,
                message: format!("Incorrect syntax near '{other}'."),
            }),
        }
    }
}

/// Which text-stored temporal family a type belongs to.
fn temporal_kind(t: Option<&TsqlType>) -> Option<char> {
    match t {
        Some(TsqlType::DateTime2(_)) => Some('d'),
        Some(TsqlType::Time(_)) => Some('t'),
        Some(TsqlType::DateTimeOffset(_)) => Some('o'),
        _ => None,
    }
}

/// Operands for comparing against a text-stored temporal column: the other side is normalised
/// to the same canonical text; datetimeoffset compares UTC instants. `None` if neither side is
/// such a column.
fn temporal_pair(
    lt: Option<&TsqlType>,
    rt: Option<&TsqlType>,
    l: &str,
    r: &str,
) -> Option<(String, String)> {
    let (lk, rk) = (temporal_kind(lt), temporal_kind(rt));
    let norm = |kind: char, x: &str| match kind {
        'd' => format!("_sim.norm_dt2(({x})::text, 7)"),
        't' => format!("_sim.norm_time(({x})::text, 7)"),
        _ => format!("_sim.norm_dto(({x})::text, 7)"),
    };
    if lk == Some('o') || rk == Some('o') {
        let side = |k: Option<char>, x: &str| {
            if k == Some('o') {
                format!("_sim.dto_utc({x})")
            } else {
                format!("_sim.dto_utc({})", norm('o', x))
            }
        };
        return Some((side(lk, l), side(rk, r)));
    }
    match (lk, rk) {
        (Some(a), Some(b)) if a == b => None,
        (Some(a), _) => Some((l.to_string(), norm(a, r))),
        (None, Some(b)) => Some((norm(b, l), r.to_string())),
        (None, None) => None,
    }
}

fn typed_literal(v: &Value, ty: &TsqlType) -> String {
    let lit = pg_literal(v);
    match (ty, v) {
        (_, Value::Null) => {
            let storage = ty.pg_storage();
            format!(
                "CAST(NULL AS {})",
                storage.split(" COLLATE").next().unwrap_or(&storage)
            )
        }
        (TsqlType::Bit, Value::Bool(b)) => (*b as i32).to_string(),
        _ => lit,
    }
}

/// Query-level rewrites: TOP becomes LIMIT, table hints go, uniqueidentifier ORDER BY keys use
/// SQL Server's byte order; expressions are rewritten bottom-up.
impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        self.post_expr(e);
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        if let Some((net, ci, args)) = cdc_function_call(tf) {
            match self.cdc_changes_sql(net, &ci, &args) {
                Ok(sql) => replace_with_derived(tf, sql),
                Err(e) => self.fail(e.number, e.message),
            }
            return ControlFlow::Continue(());
        }
        if let Some((kind, name, rest)) = changetable_call(tf) {
            match self.changetable_sql(&kind, &name, &rest) {
                Ok(sql) => replace_with_derived(tf, sql),
                Err(e) => self.fail(e.number, e.message),
            }
            return ControlFlow::Continue(());
        }
        // GENERATE_SERIES(start, stop) returns one column named `value` (SQL Server 2022).
        if let TableFactor::Table {
            name,
            args: Some(_),
            alias,
            ..
        } = tf
        {
            if name.to_string().eq_ignore_ascii_case("generate_series")
                && alias.as_ref().is_none_or(|a| a.columns.is_empty())
            {
                let a_name = alias
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| Ident::new("generate_series"));
                *alias = Some(sqlparser::ast::TableAlias {
                    explicit: true,
                    name: a_name,
                    columns: vec![sqlparser::ast::TableAliasColumnDef::from_name("value")],
                    at: None,
                });
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let rw = self;
        if let SetExpr::Select(sel) = q.body.as_mut() {
            if let Some(top) = sel.top.take() {
                if top.percent || top.with_ties {
                    rw.fail(
                        102,
                        "TOP ... PERCENT and WITH TIES are not supported by the simulator.".into(),
                    );
                }
                if let Some(qty) = top.quantity {
                    let n = match qty {
                        sqlparser::ast::TopQuantity::Expr(e) => e,
                        sqlparser::ast::TopQuantity::Constant(c) => {
                            Expr::Value(AstValue::Number(c.to_string(), false).into())
                        }
                    };
                    if q.limit_clause.is_none() && q.fetch.is_none() {
                        q.limit_clause = Some(LimitClause::LimitOffset {
                            limit: Some(n),
                            offset: None,
                            limit_by: vec![],
                        });
                    }
                }
            }
            for twj in sel.from.iter_mut() {
                clear_hints(&mut twj.relation);
                for j in twj.joins.iter_mut() {
                    clear_hints(&mut j.relation);
                }
            }
        }
        if let Some(ob) = q.order_by.as_mut() {
            if let sqlparser::ast::OrderByKind::Expressions(exprs) = &mut ob.kind {
                for o in exprs.iter_mut() {
                    match rw.type_of(&o.expr) {
                        Some(TsqlType::UniqueIdentifier) => {
                            o.expr = raw(format!("_sim.guid_key({})", o.expr))
                        }
                        Some(TsqlType::DateTimeOffset(_)) => {
                            o.expr = raw(format!("_sim.dto_utc({})", o.expr))
                        }
                        _ => {}
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn clear_hints(tf: &mut TableFactor) {
    if let TableFactor::Table { with_hints, .. } = tf {
        with_hints.clear();
    }
}

/// Prints a rewritten statement as PostgreSQL text, normalising identifiers and literals.
pub fn to_pg_text(printed: &str) -> Result<String, RewriteError> {
    let dialect = MsSqlDialect {};
    let tokens = Tokenizer::new(&dialect, printed)
        .tokenize()
        .map_err(|e| RewriteError {
            number: 102,
            message: format!("Incorrect syntax near '{}'.", e.message),
        })?;
    let mut out = String::with_capacity(printed.len() + 16);
    for t in tokens {
        match t {
            Token::Word(w) => {
                let needs_quote =
                    w.quote_style.is_some() || !w.value.is_ascii() || w.value.starts_with('#');
                if needs_quote {
                    out.push('"');
                    out.push_str(&w.value.to_lowercase().replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&w.value);
                }
            }
            Token::SingleQuotedString(s) | Token::NationalStringLiteral(s) => {
                out.push_str(&pg_quote(&s))
            }
            Token::HexStringLiteral(h) => {
                out.push_str("'\\x");
                out.push_str(&h);
                out.push_str("'::bytea");
            }
            Token::Number(n, _) if n.starts_with("0x") || n.starts_with("0X") => {
                out.push_str("'\\x");
                out.push_str(&n[2..]);
                out.push_str("'::bytea");
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

/// Converts a parsed data type to a T-SQL type, with SQL Server's error for unknown names.
pub fn tsql_type(dt: &DataType) -> Result<TsqlType, RewriteError> {
    TsqlType::parse(&dt.to_string()).map_err(|e| RewriteError {
        number: 2715,
        message: e.0,
    })
}

/// `CAST(x AS t)` for a PostgreSQL storage type (collation clause removed).
pub fn cast_kind_is_plain(k: &CastKind) -> bool {
    matches!(k, CastKind::Cast)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsql::parse::{parse_batch, Stmt};

    fn rw(sql: &str, ctx: &Context) -> String {
        let mut stmts = parse_batch(sql).unwrap();
        let Stmt::Sql(s) = &mut stmts[0] else {
            panic!("not sql")
        };
        let mut r = Rewriter::new(ctx);
        r.rewrite(s);
        assert!(r.error.is_none(), "{:?}", r.error);
        to_pg_text(&s.to_string()).unwrap()
    }

    #[test]
    fn top_hints_and_names() {
        let ctx = Context::default();
        let s = rw(
            "SELECT TOP 10 [Id], [a\"b] FROM [dbo].[My Table] WITH (NOLOCK) WHERE x = N'it''s'",
            &ctx,
        );
        assert_eq!(
            s,
            "SELECT \"id\", \"a\"\"b\" FROM \"dbo\".\"my table\" WHERE x = 'it''s' LIMIT 10"
        );
    }

    #[test]
    fn variables_and_functions() {
        let mut ctx = Context::default();
        ctx.vars
            .insert("@p1".into(), (TsqlType::BigInt, Value::Int(5)));
        ctx.tables.insert(
            "dbo.t".into(),
            vec![
                ("name".into(), TsqlType::NVarChar(Len::N(10))),
                ("g".into(), TsqlType::UniqueIdentifier),
            ],
        );
        let s = rw("SELECT ISNULL(name, 'x') + 'y', LEN(name) FROM t WHERE id > @P1 AND name LIKE 'a%' ORDER BY g", &ctx);
        assert!(s.contains("(COALESCE(name, 'x') || 'y')"), "{s}");
        assert!(s.contains("id > 5"), "{s}");
        assert!(s.contains("COLLATE _sim.bin ILIKE"), "{s}");
        assert!(s.contains("ORDER BY _sim.guid_key(g)"), "{s}");
    }

    #[test]
    fn unknown_variable_is_error_137() {
        let ctx = Context::default();
        let mut stmts = parse_batch("SELECT @nope").unwrap();
        let Stmt::Sql(s) = &mut stmts[0] else {
            panic!()
        };
        let mut r = Rewriter::new(&ctx);
        r.rewrite(s);
        assert_eq!(r.error.unwrap().number, 137);
    }

    #[test]
    fn select_types_map_around_wildcards() {
        let mut ctx = Context::default();
        ctx.tables
            .insert("dbo.t".into(), vec![("a".into(), TsqlType::Int)]);
        let mut stmts =
            parse_batch("SELECT CAST(1 AS bigint), *, CAST(a AS decimal(5,2)) FROM t").unwrap();
        let Stmt::Sql(s) = &mut stmts[0] else {
            panic!()
        };
        let types = Rewriter::new(&ctx).rewrite(s);
        // 1 + (3 columns from *) + 1 = 5 result columns.
        assert_eq!(types.column(0, 5), Some(TsqlType::BigInt));
        assert_eq!(types.column(1, 5), None);
        assert_eq!(types.column(3, 5), None);
        assert_eq!(
            types.column(4, 5),
            Some(TsqlType::Decimal {
                precision: 5,
                scale: 2,
                numeric: false
            })
        );
    }

    #[test]
    fn joined_update_and_delete() {
        let ctx = Context::default();
        let s = rw(
            "UPDATE t SET a = u.x FROM t JOIN u ON t.id = u.id WHERE u.k = 1",
            &ctx,
        );
        assert_eq!(
            s,
            "UPDATE t SET a = u.x FROM u WHERE (u.k = 1) AND (t.id = u.id)"
        );
        let s = rw(
            "UPDATE x SET a = 1 FROM dbo.t AS x INNER JOIN u ON x.id = u.id",
            &ctx,
        );
        assert_eq!(s, "UPDATE dbo.t AS x SET a = 1 FROM u WHERE x.id = u.id");
        let s = rw(
            "DELETE t FROM t JOIN u ON t.id = u.id WHERE u.gone = 1",
            &ctx,
        );
        assert_eq!(
            s,
            "DELETE FROM t USING u WHERE (u.gone = 1) AND (t.id = u.id)"
        );
        let s = rw("DELETE FROM t WHERE id = 1", &ctx);
        assert_eq!(s, "DELETE FROM t WHERE id = 1");
    }

    #[test]
    fn locking_reads_lock_only_plain_selects() {
        let ctx = Context {
            locking_reads: true,
            ..Default::default()
        };
        assert!(rw("SELECT a FROM t WHERE id = 1", &ctx).ends_with("FOR SHARE"));
        assert!(rw(
            "SELECT TOP 5 a FROM t JOIN u ON t.id = u.id ORDER BY a",
            &ctx
        )
        .ends_with("FOR SHARE"));
        for q in [
            "SELECT COUNT(*) FROM t",
            "SELECT DISTINCT a FROM t",
            "SELECT a FROM t GROUP BY a",
            "SELECT a FROM t WITH (NOLOCK)",
            "SELECT bal FROM acct WITH (NOLOCK) WHERE id = 1",
            "SELECT name FROM sys.tables",
            "SELECT 1",
            "SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t",
        ] {
            assert!(!rw(q, &ctx).contains("FOR SHARE"), "{q}");
        }
        assert!(!rw("SELECT a FROM t", &Context::default()).contains("FOR SHARE"));
    }
}
