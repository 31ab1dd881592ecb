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
    BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    LimitClause, ObjectName, Query, SelectItem, SetExpr, Statement, TableFactor, Value as AstValue,
    VisitMut, VisitorMut,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::HashMap;
use std::ops::ControlFlow;

mod changes;
mod dml;
mod functions;
mod locking;
mod spatial;
#[cfg(test)]
mod tests;

use changes::*;
pub use changes::{cdc_function_instances, changetable_targets, CdcInstance};
use dml::*;
use locking::*;

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

/// SQL Server 2000's compatibility views, found from any schema (`dbo.sysobjects`, `sysobjects`).
const COMPAT_VIEWS: &[&str] = &[
    "sysobjects",
    "sysdatabases",
    "syscolumns",
    "sysindexes",
    "systypes",
];

/// Object names as PostgreSQL knows them: the compatibility views live in `sys`; a database part
/// is dropped where it names the current database or a catalog view (each database holds the
/// whole server's `sys.databases`).
fn normalize_relations(stmt: &mut Statement, current: &str) {
    let _ = sqlparser::ast::visit_relations_mut(stmt, |name| {
        let n = name.0.len();
        let last = name.0[n - 1]
            .as_ident()
            .map(|i| i.value.to_lowercase())
            .unwrap_or_default();
        let compat = COMPAT_VIEWS.contains(&last.as_str());
        let schema = (n >= 2)
            .then(|| name.0[n - 2].as_ident().map(|i| i.value.to_lowercase()))
            .flatten();
        if compat
            && schema
                .as_deref()
                .is_none_or(|s| s == "dbo" || s == "sys" || s.is_empty())
        {
            *name = ObjectName::from(vec![Ident::new("sys"), Ident::new(last)]);
            return ControlFlow::<()>::Continue(());
        }
        if n == 3 {
            let db = name.0[0]
                .as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_default();
            let catalog = matches!(schema.as_deref(), Some("sys" | "information_schema"));
            if catalog || db.eq_ignore_ascii_case(current) {
                name.0.remove(0);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn op_of(e: &Expr) -> Option<&BinaryOperator> {
    match e {
        Expr::BinaryOp { op, .. } => Some(op),
        _ => None,
    }
}

/// SQL Server's result type of arithmetic on two different numeric types: the type of higher
/// precedence (float > real > decimal > money > smallmoney > bigint > int > smallint > tinyint),
/// and for decimals the documented precision and scale ("Precision, scale, and length"), capped
/// at 38 digits keeping at least 6 of scale. `None` for anything else.
fn arithmetic_type(op: Option<&BinaryOperator>, l: &TsqlType, r: &TsqlType) -> Option<TsqlType> {
    use TsqlType::*;
    let rank = |t: &TsqlType| match t {
        Bit => Some(0),
        TinyInt => Some(1),
        SmallInt => Some(2),
        Int => Some(3),
        BigInt => Some(4),
        SmallMoney => Some(5),
        Money => Some(6),
        Decimal { .. } => Some(7),
        Real => Some(8),
        Float => Some(9),
        _ => None,
    };
    let (rl, rr) = (rank(l)?, rank(r)?);
    let high = if rl >= rr { l } else { r };
    if !matches!(high, Decimal { .. }) {
        return Some(high.clone());
    }
    let ps = |t: &TsqlType| -> (i32, i32) {
        match t {
            Decimal {
                precision, scale, ..
            } => (*precision as i32, *scale as i32),
            Bit => (1, 0),
            TinyInt => (3, 0),
            SmallInt => (5, 0),
            Int => (10, 0),
            BigInt => (19, 0),
            Money => (19, 4),
            _ => (10, 4),
        }
    };
    let ((p1, s1), (p2, s2)) = (ps(l), ps(r));
    let (p, s) = match op? {
        BinaryOperator::Plus | BinaryOperator::Minus => {
            let s = s1.max(s2);
            (s + (p1 - s1).max(p2 - s2) + 1, s)
        }
        BinaryOperator::Multiply => (p1 + p2 + 1, s1 + s2),
        BinaryOperator::Divide => {
            let s = 6.max(s1 + p2 + 1);
            (p1 - s1 + s2 + s, s)
        }
        BinaryOperator::Modulo => {
            let s = s1.max(s2);
            ((p1 - s1).min(p2 - s2) + s, s)
        }
        _ => return None,
    };
    let (p, s) = if p > 38 {
        (38, (s - (p - 38)).max(s.min(6)))
    } else {
        (p, s)
    };
    Some(Decimal {
        precision: p.clamp(1, 38) as u8,
        scale: s.clamp(0, 38) as u8,
        numeric: matches!(l, Decimal { numeric: true, .. })
            || matches!(r, Decimal { numeric: true, .. }),
    })
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
    /// Rewritten expressions that hold text under a `_UTF8` collation: cast to varchar they
    /// stay UTF-8, and cast to varbinary they give UTF-8 bytes (SQL Server 2019).
    utf8_raw: std::collections::HashSet<String>,
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
            utf8_raw: std::collections::HashSet::new(),
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
        normalize_relations(stmt, &self.ctx.database);
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
        self.type_derived_tables(stmt);
    }

    /// Derived tables (`(SELECT ...) AS x`) get their columns typed from their select lists, so
    /// an outer expression over `x.col` is typed as SQL Server types it. Inner tables first:
    /// the visitor meets the outer factor before its subquery, so the list is walked backwards.
    fn type_derived_tables(&mut self, stmt: &Statement) {
        struct Derived(Vec<(String, Vec<(String, Expr)>)>);
        impl sqlparser::ast::Visitor for Derived {
            type Break = ();
            fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Derived {
                    subquery,
                    alias: Some(alias),
                    ..
                } = tf
                {
                    if let SetExpr::Select(select) = subquery.body.as_ref() {
                        let items = select
                            .projection
                            .iter()
                            .filter_map(|item| match item {
                                SelectItem::ExprWithAlias { expr, alias } => {
                                    Some((alias.value.to_lowercase(), expr.clone()))
                                }
                                SelectItem::UnnamedExpr(e @ Expr::Identifier(i)) => {
                                    Some((i.value.to_lowercase(), e.clone()))
                                }
                                _ => None,
                            })
                            .collect();
                        self.0.push((alias.name.value.to_lowercase(), items));
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut v = Derived(Vec::new());
        let _ = sqlparser::ast::Visit::visit(stmt, &mut v);
        for (alias, items) in v.0.into_iter().rev() {
            let cols: TableColumns = items
                .iter()
                .filter_map(|(name, e)| Some((name.clone(), self.type_of(e)?)))
                .collect();
            let key = format!("derived:{alias}");
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
            // Unqualified: a derived table's column first (the outer query's FROM names the
            // derived table; the tables inside it are out of its scope), then any table's.
            None => self
                .aliases
                .values()
                .filter(|k| k.starts_with("derived:"))
                .chain(self.aliases.values())
                .find_map(|k| find(k)),
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
            Expr::Value(v) if matches!(&v.value, AstValue::Number(n, _) if n.starts_with("0x") || n.starts_with("0X")) => {
                Some(TsqlType::VarBinary(Len::N(8000)))
            }
            Expr::Value(v) => match &v.value {
                AstValue::HexStringLiteral(_) => Some(TsqlType::VarBinary(Len::N(8000))),
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
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Minus | sqlparser::ast::UnaryOperator::Plus,
                expr,
            } => self.type_of(expr),
            Expr::Substring { expr, .. } => match self.type_of(expr) {
                Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image) => {
                    Some(TsqlType::VarBinary(Len::Max))
                }
                other => other,
            },
            // CASE: the first result whose type is known (SQL Server takes the highest
            // precedence; the results agree in what the simulator meets).
            Expr::Case {
                conditions,
                else_result,
                ..
            } => conditions
                .iter()
                .map(|c| &c.result)
                .chain(else_result.as_deref())
                .find_map(|r| self.type_of(r)),
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
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo,
                right,
            } => match (self.type_of(left), self.type_of(right)) {
                (Some(l), Some(r)) if l == r => Some(l),
                (Some(l), Some(r)) => arithmetic_type(op_of(e), &l, &r),
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

    fn cast(&mut self, expr: &Expr, dt: &DataType, style: Option<&Expr>) -> Expr {
        let ty = match TsqlType::parse(&dt.to_string()) {
            Ok(t) => t,
            Err(e) => {
                self.fail(243, e.0);
                return raw("NULL".into());
            }
        };
        let inner = expr.to_string();
        let src_ty = self.type_of(expr);
        let utf8 = self.utf8_raw.contains(&inner);
        let sql = match (&ty, style) {
            (TsqlType::SqlVariant, _) if src_ty == Some(TsqlType::SqlVariant) => inner,
            // A sql_variant keeps its base type's name next to the value's text.
            (TsqlType::SqlVariant, _) => {
                let base = src_ty
                    .as_ref()
                    .map_or("nvarchar", |t| t.sys_name());
                let text = match src_ty {
                    Some(TsqlType::Binary(_) | TsqlType::VarBinary(_) | TsqlType::Image) => {
                        format!("'0x' || upper(encode(({inner})::bytea, 'hex'))")
                    }
                    _ => format!("({inner})::text"),
                };
                return self.typed_raw(
                    format!("_sim.variant('{base}', {text})"),
                    Some(TsqlType::SqlVariant),
                );
            }
            // Text under a _UTF8 collation: varchar keeps it, varbinary gives its UTF-8 bytes.
            (TsqlType::VarChar(_) | TsqlType::Char(_), None) if utf8 => {
                let out = format!("_sim.utf8({inner})");
                self.utf8_raw.insert(out.clone());
                return self.typed_raw(out, Some(ty));
            }
            (TsqlType::VarBinary(_) | TsqlType::Binary(_), _) if utf8 => {
                format!("convert_to({inner}, 'UTF8')")
            }
            // Binary images of numbers, as SQL Server lays them out: big-endian.
            (TsqlType::VarBinary(_) | TsqlType::Binary(_), _)
                if matches!(
                    src_ty,
                    Some(
                        TsqlType::Bit
                            | TsqlType::TinyInt
                            | TsqlType::SmallInt
                            | TsqlType::Real
                            | TsqlType::Float
                    )
                ) =>
            {
                match src_ty {
                    Some(TsqlType::Bit) => format!(
                        "(CASE WHEN ({inner}) IS NULL THEN NULL WHEN ({inner}) <> 0 THEN '\\x01'::bytea ELSE '\\x00'::bytea END)"
                    ),
                    Some(TsqlType::TinyInt) => format!("substr(int2send(({inner})::smallint), 2, 1)"),
                    Some(TsqlType::SmallInt) => format!("int2send(({inner})::smallint)"),
                    Some(TsqlType::Real) => format!("float4send(({inner})::real)"),
                    _ => format!("float8send(({inner})::float8)"),
                }
            }
            (
                TsqlType::BigInt | TsqlType::Int | TsqlType::SmallInt | TsqlType::TinyInt,
                _,
            ) if matches!(
                src_ty,
                Some(TsqlType::VarBinary(_) | TsqlType::Binary(_))
            ) =>
            {
                let storage = ty.pg_storage();
                format!("(_sim.binary_to_bigint({inner}))::{storage}")
            }
                        // datetime's exact value is whole 1/300 s ticks; datetime2(n) rounds it to n digits.
            (TsqlType::DateTime2(n), None)
                if matches!(src_ty, Some(TsqlType::DateTime | TsqlType::SmallDateTime)) =>
            {
                format!("_sim.datetime_to_datetime2({inner}, {n})")
            }
            // char(n) keeps its padding when converted to another string type.
            (t, None)
                if t.is_string()
                    && matches!(src_ty, Some(TsqlType::Char(_) | TsqlType::NChar(_))) =>
            {
                let n = match src_ty {
                    Some(TsqlType::Char(n) | TsqlType::NChar(n)) => n,
                    _ => 1,
                };
                format!("rpad(({inner})::text, greatest({n}, length(({inner})::text)))")
            }
            (t, Some(style)) if t.is_string() => format!("_sim.convert_text(({inner}), {style})"),
            // From text (a literal or a bound parameter) or another datetime2: the canonical
            // text datetime2 is stored as, all seven digits kept, so it compares with columns.
            (TsqlType::DateTime2(n), None)
                if src_ty.is_none()
                    || matches!(src_ty, Some(TsqlType::DateTime2(_)))
                    || src_ty.as_ref().is_some_and(|t| t.is_string()) =>
            {
                format!("_sim.norm_dt2(({inner})::text, {n})")
            }
            (TsqlType::DateTime2(_), _) => format!("_sim.to_datetime2({inner})"),
            (TsqlType::DateTimeOffset(_), _) => format!("_sim.to_datetimeoffset({inner})"),
            // time(n) is stored as its canonical text (seven digits), as datetime2 is: from
            // text, a parameter or a datetime, that text, so it compares with columns.
            (TsqlType::Time(n), _) => format!("_sim.norm_time(({inner})::text, {n})"),
            (TsqlType::Bit, _) => format!("_sim.to_bit({inner})"),
            (TsqlType::VarBinary(_) | TsqlType::Binary(_), _)
                if src_ty == Some(TsqlType::SqlVariant) =>
            {
                format!("({inner})::bytea")
            }
            (TsqlType::VarBinary(_) | TsqlType::Binary(_), _) => {
                format!("_sim.to_varbinary({inner})")
            }
            (TsqlType::NVarChar(_) | TsqlType::NChar(_), _)
                if matches!(
                    self.type_of(expr),
                    Some(TsqlType::VarBinary(_) | TsqlType::Binary(_))
                ) =>
            {
                format!("_sim.from_utf16le({inner})")
            }
            (t, _) => {
                let storage = t.pg_storage();
                let storage = storage
                    .split(" COLLATE")
                    .next()
                    .unwrap_or(&storage)
                    .to_string();
                // A cast PostgreSQL sees as a no-op (money to decimal(19,4): both numeric(19,4))
                // would leave a plain column reference, whose RowDescription names the base
                // column and so its declared type; keep the cast visible as an expression.
                let src = self.type_of(expr);
                let same_storage = src
                    .as_ref()
                    .is_some_and(|s| s != t && s.pg_storage() == t.pg_storage());
                let barrier = match (same_storage, src.as_ref().map(|s| s.is_string())) {
                    (true, Some(true)) => " || ''",
                    (true, Some(false))
                        if storage.starts_with("numeric")
                            || storage.ends_with("int")
                            || storage == "integer" =>
                    {
                        " + 0"
                    }
                    _ => "",
                };
                format!("CAST(({inner}){barrier} AS {storage})")
            }
        };
        self.typed_raw(sql, Some(ty))
    }

    fn post_expr(&mut self, e: &mut Expr) {
        // Window orderings follow SQL Server's order too (ROW_NUMBER() OVER (ORDER BY guid)).
        if let Expr::Function(f) = e {
            if let Some(sqlparser::ast::WindowType::WindowSpec(spec)) = f.over.as_mut() {
                for o in spec.order_by.iter_mut() {
                    match self.type_of(&o.expr) {
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
        let replacement = match e {
            Expr::Identifier(i) if i.quote_style.is_none() && i.value.starts_with('@') => {
                Some(self.var(&i.value.clone()))
            }
            Expr::Function(f) => {
                let f = f.clone();
                self.spatial_method(&f).or_else(|| self.func(&f))
            }
            Expr::CompoundIdentifier(parts) => {
                let parts = parts.clone();
                self.spatial_property(&parts)
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
            Expr::Collate { expr, collation } => {
                let inner = expr.to_string();
                let name = collation.to_string().to_uppercase();
                let is_utf8 = name.ends_with("_UTF8");
                // Binary collations compare code points: the simulator's deterministic one.
                let inner = if name.contains("_BIN") {
                    format!("({inner})::text COLLATE _sim.bin")
                } else {
                    inner
                };
                let t = self.type_of(expr);
                if is_utf8 {
                    let out = format!("_sim.utf8({inner})");
                    self.utf8_raw.insert(out.clone());
                    Some(self.typed_raw(out, t))
                } else {
                    // Comparisons here are already SQL Server's; the collation name is dropped.
                    Some(self.typed_raw(format!("({inner})"), t))
                }
            }
            // varbinary + varbinary concatenates.
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Plus,
                right,
            } if [self.type_of(left), self.type_of(right)]
                .iter()
                .any(|t| matches!(t, Some(TsqlType::VarBinary(_) | TsqlType::Binary(_)))) =>
            {
                let s = format!("({left} || {right})");
                Some(self.typed_raw(s, Some(TsqlType::VarBinary(Len::Max))))
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
                let literal = match pattern.as_ref() {
                    Expr::Value(v) => match &v.value {
                        AstValue::SingleQuotedString(p) | AstValue::NationalStringLiteral(p) => {
                            Some(p.clone())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                match literal {
                    // `[0-9]`-style classes: LIKE has none in PostgreSQL, so the pattern becomes
                    // an anchored regular expression (case-insensitive, as the collation).
                    Some(p) if p.contains('[') && escape_char.is_none() => {
                        let not = if *negated { "!" } else { "" };
                        Some(raw(format!(
                            "(({expr})::text COLLATE _sim.bin {not}~* {})",
                            pg_quote(&like_to_regex(&p))
                        )))
                    }
                    _ => Some(raw(format!(
                        "(({expr})::text COLLATE _sim.bin {not}ILIKE ({pattern}){esc})"
                    ))),
                }
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *e = r;
        }
    }
}

/// A T-SQL LIKE pattern as an anchored POSIX regular expression: `%` any run, `_` one
/// character, `[abc]` / `[a-z]` / `[^a-z]` a class, everything else literal.
fn like_to_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    if d == '\\' {
                        class.push('\\');
                    }
                    class.push(d);
                }
                if closed {
                    out.push('[');
                    out.push_str(&class);
                    out.push(']');
                } else {
                    out.push_str("\\[");
                    out.push_str(&regex_escape(&class));
                }
            }
            other => out.push_str(&regex_escape(&other.to_string())),
        }
    }
    out.push('$');
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
        // A binary literal in a bitwise operation is an integer (`sysstat & 0xf`).
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::BitwiseAnd | BinaryOperator::BitwiseOr | BinaryOperator::BitwiseXor,
            right,
        } = e
        {
            for side in [left, right] {
                if let Expr::Value(v) = side.as_mut() {
                    let hex = match &v.value {
                        AstValue::Number(n, _) => {
                            n.strip_prefix("0x").or_else(|| n.strip_prefix("0X"))
                        }
                        AstValue::HexStringLiteral(h) => Some(h.as_str()),
                        _ => None,
                    };
                    if let Some(v) = hex.and_then(|h| i64::from_str_radix(h, 16).ok()) {
                        **side = Expr::value(AstValue::Number(v.to_string(), false));
                    }
                }
            }
        }
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
    let mut prev_sig: Option<Token> = None;
    for t in tokens {
        let after_as = matches!(&prev_sig, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("AS"));
        let after_cross = matches!(&prev_sig, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("CROSS"));
        if !matches!(t, Token::Whitespace(_)) {
            prev_sig = Some(t.clone());
        }
        match t {
            // CROSS APPLY is PostgreSQL's CROSS JOIN LATERAL.
            Token::Word(w)
                if after_cross
                    && w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case("APPLY") =>
            {
                out.push_str("JOIN LATERAL");
            }
            // `expr AS 'name'`: T-SQL allows a string as a column alias.
            Token::SingleQuotedString(s) if after_as => {
                out.push('"');
                out.push_str(&s.to_lowercase().replace('"', "\"\""));
                out.push('"');
            }
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
            // An odd number of hex digits is padded on the left, as SQL Server reads 0xABC.
            Token::HexStringLiteral(h) => {
                out.push_str("'\\x");
                if h.len() % 2 == 1 {
                    out.push('0');
                }
                out.push_str(&h);
                out.push_str("'::bytea");
            }
            Token::Number(n, _) if n.starts_with("0x") || n.starts_with("0X") => {
                out.push_str("'\\x");
                if n.len() % 2 == 1 {
                    out.push('0');
                }
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

#[cfg(test)]
mod like_tests {
    use super::like_to_regex;

    #[test]
    fn like_patterns_with_classes_become_anchored_regexes() {
        let cases = [
            (
                "[0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]",
                "^[0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]$",
            ),
            ("99[0-9][0-9]", "^99[0-9][0-9]$"),
            (
                "[A-Z][A-Z][A-Z][1-9][0-9][0-9][0-9][0-9][FM]",
                "^[A-Z][A-Z][A-Z][1-9][0-9][0-9][0-9][0-9][FM]$",
            ),
            ("[^a-c]%x_.", "^[^a-c].*x.\\.$"),
            ("a[b", "^a\\[b$"),
            ("1+1(%)", "^1\\+1\\(.*\\)$"),
        ];
        for (like, regex) in cases {
            assert_eq!(like_to_regex(like), regex, "{like}");
        }
    }
}
