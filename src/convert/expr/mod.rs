//! T-SQL expressions (CHECK constraints, defaults, computed columns, filtered indexes, view
//! predicates) translated to PostgreSQL expressions that mean the same thing.
//!
//! Contract: [`translate`] returns PostgreSQL SQL only when it means what the T-SQL meant under
//! SQL Server's rules (trailing spaces ignored by `=`, the column's case sensitivity, `+` on
//! strings, `LEN` without trailing spaces, `DATEDIFF` counting boundaries, bit compared with
//! 0/1); otherwise it refuses, naming the node and the reason ([`Refusal`]). It never emits SQL
//! that means something else. Parsing is sqlparser's (MsSqlDialect).
//!
//! What is known to differ and is accepted: `ISNULL` becomes `COALESCE` (the result type is the
//! wider of the two, not the first's), and case-insensitive equality uses PostgreSQL's `lower()`
//! (the same for every character SQL Server's Latin1 collations fold).
//!
//! The simulator's rewriter (`mssql-sim`) also turns T-SQL into PostgreSQL, but onto its own
//! storage forms (temporal values as sortable text, its `_sim` functions); nothing but the
//! parser is the same, so nothing else is shared.

mod functions;
pub mod query;

use super::TargetKind;
use crate::model::quote_pg;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;
use std::fmt;

/// A column an expression may name: its SQL Server name, its PostgreSQL name and type, and how
/// its strings compare at the source.
#[derive(Debug, Clone)]
pub struct ExprColumn {
    /// Name as SQL Server spells it (matched case-insensitively, as SQL Server does).
    pub source: String,
    /// Name on the target.
    pub target: String,
    /// Target type.
    pub kind: TargetKind,
    /// National text (`nchar`, `nvarchar`, `ntext`): SQL Server counts its bytes as UTF-16.
    pub national: bool,
    /// The column's collation is case-insensitive (`_CI_`), SQL Server's usual default.
    pub case_insensitive: bool,
    /// In a query: the relation it comes from, as the T-SQL names it (its alias, or the table's
    /// name) and as the translation does (its alias there); none in a table's own expressions.
    pub relation: Option<(String, String)>,
}

/// What an expression may refer to.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The table's columns.
    pub columns: Vec<ExprColumn>,
    /// The database's default collation is case-insensitive (the collation of literals).
    pub default_case_insensitive: bool,
    /// Some column is declared with a nondeterministic collation (`mapping.collation =
    /// "preserve"`): pattern matching and substring search, which PostgreSQL before 18 refuses
    /// there, run under `COLLATE "default"` on the folded text.
    pub nondeterministic: bool,
}

impl Scope {
    /// The columns of a planned table (an excluded column is not in scope: an expression that
    /// names it is refused). String columns compare case-insensitively unless discovery found a
    /// case-sensitive or binary collation; constants take the usual case-insensitive default.
    pub fn of_plan(plan: &super::TablePlan) -> Scope {
        Scope::of_columns(&plan.columns, &plan.source)
    }

    /// As [`Scope::of_plan`], for some planned columns of `table`.
    pub fn of_columns(columns: &[super::ColumnPlan], table: &crate::model::SourceTable) -> Scope {
        let nondeterministic = columns.iter().any(|c| c.collate.is_some());
        let columns = columns
            .iter()
            .filter(|c| !c.expression)
            .map(|c| {
                let source = table.columns.iter().find(|s| s.name == c.source);
                ExprColumn {
                    source: c.source.clone(),
                    target: c.target.clone(),
                    kind: c.kind,
                    national: source.is_some_and(|s| s.source_type.name.starts_with('n')),
                    case_insensitive: !table
                        .case_sensitive_columns
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(&c.source)),
                    relation: None,
                }
            })
            .collect();
        Scope {
            columns,
            default_case_insensitive: true,
            nondeterministic,
        }
    }

    /// `text` as pattern matching and substring search can take it (see `nondeterministic`).
    pub(crate) fn deterministic(&self, text: String) -> String {
        if self.nondeterministic {
            format!("{text} COLLATE \"default\"")
        } else {
            text
        }
    }
}

/// Why an expression was not translated: the node and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The T-SQL node that has no faithful translation, as written.
    pub node: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.node, self.reason)
    }
}

fn refuse<T>(node: impl fmt::Display, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        node: node.to_string(),
        reason: reason.into(),
    })
}

/// The type of a translated expression, as far as the translation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// Text: case-insensitive at the source; national; its collation is a column's (which
    /// wins over a constant's, as SQL Server's collation precedence says).
    Str { ci: bool, national: bool, col: bool },
    /// An integer.
    Int,
    /// An exact decimal.
    Decimal,
    /// A double-precision floating-point number (`float`).
    Float,
    /// A single-precision one (`real`): SQL Server computes in it when it ranks highest.
    Real,
    /// `bit`, which the target holds as boolean.
    Bool,
    /// A date.
    Date,
    /// A time of day.
    Time,
    /// A timestamp without time zone (`datetime`, `datetime2`, `smalldatetime`).
    Timestamp,
    /// A timestamp with time zone (`datetimeoffset`).
    TimestampTz,
    /// Bytes.
    Bytes,
    /// A uniqueidentifier.
    Uuid,
    /// A predicate (the result of a comparison).
    Predicate,
    /// The NULL literal.
    Null,
}

impl Ty {
    fn of_kind(kind: TargetKind, ci: bool, national: bool) -> Ty {
        match kind {
            TargetKind::Bool => Ty::Bool,
            TargetKind::Int2 | TargetKind::Int4 | TargetKind::Int8 => Ty::Int,
            TargetKind::Numeric(_) => Ty::Decimal,
            TargetKind::Float4 => Ty::Real,
            TargetKind::Float8 => Ty::Float,
            TargetKind::Date => Ty::Date,
            TargetKind::Time => Ty::Time,
            TargetKind::Timestamp => Ty::Timestamp,
            TargetKind::TimestampTz => Ty::TimestampTz,
            TargetKind::Bytea => Ty::Bytes,
            TargetKind::Uuid => Ty::Uuid,
            _ => Ty::Str {
                ci,
                national,
                col: true,
            },
        }
    }

    fn is_str(self) -> bool {
        matches!(self, Ty::Str { .. })
    }

    fn is_number(self) -> bool {
        matches!(self, Ty::Int | Ty::Decimal | Ty::Float | Ty::Real)
    }

    fn is_temporal(self) -> bool {
        matches!(self, Ty::Date | Ty::Time | Ty::Timestamp | Ty::TimestampTz)
    }
}

/// A translated expression and its type.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) ty: Ty,
}

fn sql(text: impl Into<String>, ty: Ty) -> Sql {
    Sql {
        text: text.into(),
        ty,
    }
}

/// Translates one T-SQL expression (as SQL Server prints it in its catalog, outer parentheses
/// and all) to PostgreSQL; see the module's contract.
pub fn translate(tsql: &str, scope: &Scope) -> Result<String, Refusal> {
    let expr = parse(tsql)?;
    Ok(Translator {
        scope,
        catalog: None,
    }
    .expr(&expr)?
    .text)
}

/// Translates a condition (a CHECK constraint, an index filter): refused unless it is one.
pub fn translate_condition(tsql: &str, scope: &Scope) -> Result<String, Refusal> {
    let expr = parse(tsql)?;
    let s = Translator {
        scope,
        catalog: None,
    }
    .expr(&expr)?;
    if s.ty != Ty::Predicate {
        return refuse(tsql, "not a condition");
    }
    Ok(s.text)
}

/// Translates a value for a column of type `kind` (a default, a computed column): refused
/// when the value's type is not the column's (PostgreSQL would convert it by its own rules).
pub fn translate_value(tsql: &str, scope: &Scope, kind: TargetKind) -> Result<String, Refusal> {
    let expr = parse(tsql)?;
    let s = Translator {
        scope,
        catalog: None,
    }
    .expr(&expr)?;
    let want = Ty::of_kind(kind, false, false);
    let fits = match (s.ty, want) {
        (Ty::Null, _) => true,
        (Ty::Str { .. }, Ty::Str { .. }) => true,
        (Ty::Int, Ty::Int | Ty::Decimal | Ty::Float | Ty::Real) => true,
        (Ty::Decimal, Ty::Decimal | Ty::Float | Ty::Real) => true,
        (Ty::Real, Ty::Float) => true,
        (a, b) => a == b,
    };
    if !fits {
        return refuse(
            tsql,
            format!("its value is not of the column's type ({})", kind.ddl()),
        );
    }
    Ok(s.text)
}

fn parse(tsql: &str) -> Result<Expr, Refusal> {
    let dialect = MsSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(tsql)
        .map_err(|e| Refusal {
            node: tsql.to_string(),
            reason: format!("not a T-SQL expression: {e}"),
        })?;
    let expr = parser.parse_expr().map_err(|e| Refusal {
        node: tsql.to_string(),
        reason: format!("not a T-SQL expression: {e}"),
    })?;
    let rest = parser.peek_token();
    if rest.token != sqlparser::tokenizer::Token::EOF {
        return refuse(tsql, format!("text after the expression: {rest}"));
    }
    Ok(expr)
}

pub(crate) struct Translator<'a> {
    pub(crate) scope: &'a Scope,
    /// In a view's query: what its subqueries may read.
    pub(crate) catalog: Option<&'a query::Catalog<'a>>,
}

impl Translator<'_> {
    pub(crate) fn expr(&self, e: &Expr) -> Result<Sql, Refusal> {
        match e {
            Expr::Nested(inner) => {
                let s = self.expr(inner)?;
                Ok(sql(format!("({})", s.text), s.ty))
            }
            Expr::Identifier(id) => self.column(None, &id.value, e),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [q, last] => self.column(Some(&q.value), &last.value, e),
                _ => refuse(e, "a column of another table"),
            },
            Expr::Value(v) => self.value(&v.value, e),
            Expr::UnaryOp { op, expr } => {
                let s = self.expr(expr)?;
                match op {
                    UnaryOperator::Minus if s.ty.is_number() => {
                        Ok(sql(format!("-{}", s.text), s.ty))
                    }
                    UnaryOperator::Plus if s.ty.is_number() => Ok(s),
                    UnaryOperator::Not if s.ty == Ty::Predicate => {
                        Ok(sql(format!("NOT {}", s.text), Ty::Predicate))
                    }
                    _ => refuse(e, "operator on this type has no translation"),
                }
            }
            Expr::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            Expr::IsNull(x) => Ok(sql(
                format!("{} IS NULL", self.expr(x)?.text),
                Ty::Predicate,
            )),
            Expr::IsNotNull(x) => Ok(sql(
                format!("{} IS NOT NULL", self.expr(x)?.text),
                Ty::Predicate,
            )),
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let x = self.expr(expr)?;
                let mut items = Vec::new();
                let all = list
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<Vec<_>, _>>()?;
                let tys: Vec<Ty> = all.iter().map(|s| s.ty).chain([x.ty]).collect();
                let ci = case_insensitive(&tys);
                let x = self.comparable(x, ci, &all)?;
                for s in all {
                    items.push(self.comparable(s, ci, std::slice::from_ref(&x))?.text);
                }
                let not = if *negated { "NOT " } else { "" };
                Ok(sql(
                    format!("{} {not}IN ({})", x.text, items.join(", ")),
                    Ty::Predicate,
                ))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, lo, hi) = (self.expr(expr)?, self.expr(low)?, self.expr(high)?);
                let date_bound = |b: &Sql| {
                    x.ty.is_temporal()
                        && string_literal(&b.text).is_some_and(|v| unambiguous_date(&v, x.ty))
                };
                let strings = [&x, &lo, &hi].iter().any(|s| s.ty.is_str());
                if strings && !(date_bound(&lo) && date_bound(&hi)) {
                    return refuse(
                        e,
                        "the order of strings depends on the collation (a date's bounds must be 'YYYYMMDD' constants)",
                    );
                }
                let not = if *negated { "NOT " } else { "" };
                Ok(sql(
                    format!("{} {not}BETWEEN {} AND {}", x.text, lo.text, hi.text),
                    Ty::Predicate,
                ))
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => self.like(e, expr, pattern, *negated),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            Expr::Function(f) => functions::call(self, e, f),
            Expr::Subquery(q) => query::scalar_subquery(q, self),
            Expr::Substring {
                expr,
                substring_from: Some(from),
                substring_for: Some(len),
                ..
            } => functions::call_named(self, e, "substring", &[expr, from, len]),
            Expr::Trim {
                expr,
                trim_where: None,
                trim_what: None,
                trim_characters: None,
            } => functions::call_named(self, e, "trim", &[expr]),
            Expr::Floor { expr, field } | Expr::Ceil { expr, field }
                if matches!(
                    field,
                    sqlparser::ast::CeilFloorKind::DateTimeField(
                        sqlparser::ast::DateTimeField::NoDateTime
                    )
                ) =>
            {
                let name = if matches!(e, Expr::Floor { .. }) {
                    "floor"
                } else {
                    "ceiling"
                };
                functions::call_named(self, e, name, &[expr])
            }
            Expr::Cast {
                kind: sqlparser::ast::CastKind::Cast,
                expr,
                data_type,
                format: None,
                ..
            } => functions::convert(self, e, expr, &data_type.to_string(), None),
            Expr::Convert {
                is_try: false,
                expr,
                data_type: Some(dt),
                charset: None,
                styles,
                ..
            } => functions::convert(self, e, expr, &dt.to_string(), styles.first()),
            _ => refuse(e, "this kind of expression has no translation"),
        }
    }

    /// A column by name, and in a query by the relation it is qualified with; ambiguous or
    /// unknown names are refused.
    fn column(&self, qualifier: Option<&str>, name: &str, e: &Expr) -> Result<Sql, Refusal> {
        let found: Vec<&ExprColumn> = self
            .scope
            .columns
            .iter()
            .filter(|c| c.source.eq_ignore_ascii_case(name))
            .filter(|c| match (&c.relation, qualifier) {
                (Some((q, _)), Some(want)) => q.eq_ignore_ascii_case(want),
                _ => true,
            })
            .collect();
        match found.as_slice() {
            [c] => Ok(sql(
                match &c.relation {
                    Some((_, alias)) => format!("{}.{}", quote_pg(alias), quote_pg(&c.target)),
                    None => quote_pg(&c.target),
                },
                Ty::of_kind(c.kind, c.case_insensitive, c.national),
            )),
            [] => refuse(e, format!("no column {name} in this table")),
            _ => refuse(e, format!("column {name} is ambiguous")),
        }
    }

    fn value(&self, v: &Value, e: &Expr) -> Result<Sql, Refusal> {
        match v {
            Value::Number(n, _) if n.starts_with("0x") || n.starts_with("0X") => {
                let hex = &n[2..];
                if hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    Ok(sql(format!("'\\x{hex}'::bytea"), Ty::Bytes))
                } else {
                    refuse(e, "not a binary constant")
                }
            }
            Value::Number(n, _) => {
                let ty = if n.contains(['e', 'E']) {
                    Ty::Float
                } else if n.contains('.') {
                    Ty::Decimal
                } else {
                    Ty::Int
                };
                Ok(sql(n.clone(), ty))
            }
            Value::HexStringLiteral(hex) if hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Ok(sql(format!("'\\x{hex}'::bytea"), Ty::Bytes))
            }
            Value::SingleQuotedString(s) => Ok(self.string(s, false)),
            Value::NationalStringLiteral(s) => Ok(self.string(s, true)),
            Value::Null => Ok(sql("NULL", Ty::Null)),
            _ => refuse(e, "this kind of constant has no translation"),
        }
    }

    fn string(&self, s: &str, national: bool) -> Sql {
        sql(
            literal(s),
            Ty::Str {
                ci: self.scope.default_case_insensitive,
                national,
                col: false,
            },
        )
    }

    fn binary(
        &self,
        e: &Expr,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
    ) -> Result<Sql, Refusal> {
        let (l, r) = (self.expr(left)?, self.expr(right)?);
        use BinaryOperator as B;
        match op {
            B::And | B::Or => {
                if l.ty != Ty::Predicate || r.ty != Ty::Predicate {
                    return refuse(e, "AND/OR of values that are not conditions");
                }
                Ok(sql(format!("{} {op} {}", l.text, r.text), Ty::Predicate))
            }
            B::Plus if l.ty.is_str() || r.ty.is_str() => {
                if !(l.ty.is_str() || l.ty == Ty::Null) || !(r.ty.is_str() || r.ty == Ty::Null) {
                    return refuse(
                        e,
                        "+ of a string and a non-string converts by SQL Server's precedence rules",
                    );
                }
                Ok(sql(format!("{} || {}", l.text, r.text), merge(l.ty, r.ty)))
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let numeric = |t: Ty| t.is_number() || t == Ty::Null;
                if !numeric(l.ty) || !numeric(r.ty) {
                    return refuse(
                        e,
                        "arithmetic on non-numbers (dates: use DATEADD) has no translation",
                    );
                }
                let ty = [l.ty, r.ty]
                    .into_iter()
                    .max_by_key(|t| match t {
                        Ty::Float => 4,
                        Ty::Real => 3,
                        Ty::Decimal => 2,
                        _ => 1,
                    })
                    .unwrap_or(Ty::Int);
                if *op == B::Divide && ty == Ty::Decimal {
                    return refuse(
                        e,
                        "decimal division keeps a scale SQL Server derives from both operands",
                    );
                }
                if ty == Ty::Real {
                    // SQL Server rounds every step to single precision; PostgreSQL takes mixed
                    // operands to double precision, and where a later conversion to money or
                    // decimal rounds, one digit can differ. Not translated rather than nearly.
                    return refuse(
                        e,
                        "arithmetic in real (single precision) rounds at every step in SQL Server",
                    );
                }
                Ok(sql(format!("{} {op} {}", l.text, r.text), ty))
            }
            B::Eq | B::NotEq | B::Lt | B::Gt | B::LtEq | B::GtEq => self.comparison(e, l, op, r),
            _ => refuse(e, format!("operator {op} has no translation")),
        }
    }

    fn comparison(&self, e: &Expr, l: Sql, op: &BinaryOperator, r: Sql) -> Result<Sql, Refusal> {
        let pg_op = match op {
            BinaryOperator::NotEq => "<>".to_string(),
            o => o.to_string(),
        };
        let temporal = |a: &Sql, b: &Sql| a.ty.is_temporal() && b.ty.is_str();
        if temporal(&l, &r) || temporal(&r, &l) {
            let (d, s) = if l.ty.is_temporal() {
                (&l, &r)
            } else {
                (&r, &l)
            };
            if !string_literal(&s.text).is_some_and(|v| unambiguous_date(&v, d.ty)) {
                return refuse(e, "a date compared with a string converts by SQL Server's rules (DATEFORMAT); only 'YYYYMMDD' constants are read the same everywhere");
            }
            return Ok(sql(format!("{} {pg_op} {}", l.text, r.text), Ty::Predicate));
        }
        if l.ty.is_str() || r.ty.is_str() {
            if !matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                return refuse(e, "the order of strings depends on the collation");
            }
            let ci = case_insensitive(&[l.ty, r.ty]);
            let l = self.comparable(l, ci, std::slice::from_ref(&r))?;
            let r = self.comparable(r, ci, std::slice::from_ref(&l))?;
            return Ok(sql(format!("{} {pg_op} {}", l.text, r.text), Ty::Predicate));
        }
        // bit against 0 or 1: the target holds a boolean.
        let l2 = bit_side(l.clone(), &r, e)?;
        let r = bit_side(r, &l, e)?;
        let l = l2;
        Ok(sql(format!("{} {pg_op} {}", l.text, r.text), Ty::Predicate))
    }

    /// A string operand as SQL Server compares it: trailing spaces ignored, and case folded
    /// when the comparison is case-insensitive. A non-string is refused.
    fn comparable(&self, s: Sql, ci: bool, others: &[Sql]) -> Result<Sql, Refusal> {
        if s.ty == Ty::Null {
            return Ok(s);
        }
        if !s.ty.is_str() {
            if others.iter().all(|o| !o.ty.is_str()) {
                return Ok(s);
            }
            return refuse(&s.text, "a string compared with a non-string");
        }
        if let Some(lit) = string_literal(&s.text) {
            let mut v = lit.trim_end_matches(' ').to_string();
            if ci {
                if !v.is_ascii() {
                    return Ok(sql(format!("lower({})", literal(&v)), s.ty));
                }
                v = v.to_ascii_lowercase();
            }
            return Ok(sql(literal(&v), s.ty));
        }
        let trimmed = format!("rtrim({})", s.text);
        Ok(sql(
            if ci {
                format!("lower({trimmed})")
            } else {
                trimmed
            },
            s.ty,
        ))
    }

    fn like(&self, e: &Expr, expr: &Expr, pattern: &Expr, negated: bool) -> Result<Sql, Refusal> {
        let x = self.expr(expr)?;
        if !x.ty.is_str() {
            return refuse(e, "LIKE on a non-string converts it by SQL Server's rules");
        }
        let p = self.expr(pattern)?;
        let Some(pat) = string_literal(&p.text) else {
            return refuse(e, "LIKE with a pattern that is not a constant");
        };
        let ci = matches!(x.ty, Ty::Str { ci: true, .. });
        let not = if negated { "NOT " } else { "" };
        if !pat.contains('[') {
            // PostgreSQL's LIKE escapes with a backslash by default; T-SQL's has no escape.
            let op = if ci { "ILIKE" } else { "LIKE" };
            return Ok(sql(
                format!(
                    "{} {not}{op} {}",
                    self.scope.deterministic(x.text),
                    literal(&pat.replace('\\', "\\\\"))
                ),
                Ty::Predicate,
            ));
        }
        let similar = similar_pattern(&pat).ok_or_else(|| Refusal {
            node: e.to_string(),
            reason: "an unclosed [ in the LIKE pattern".into(),
        })?;
        let (subject, similar) = if ci {
            if !similar.is_ascii() {
                return refuse(e, "a case-insensitive pattern class with non-ASCII letters");
            }
            (format!("lower({})", x.text), similar.to_ascii_lowercase())
        } else {
            (x.text, similar)
        };
        Ok(sql(
            format!(
                "{} {not}SIMILAR TO {}",
                self.scope.deterministic(subject),
                literal(&similar)
            ),
            Ty::Predicate,
        ))
    }

    fn case(
        &self,
        operand: Option<&Expr>,
        conditions: &[sqlparser::ast::CaseWhen],
        else_result: Option<&Expr>,
    ) -> Result<Sql, Refusal> {
        let operand = operand.map(|o| self.expr(o)).transpose()?;
        let mut out = String::from("CASE");
        let mut ty = Ty::Null;
        for w in conditions {
            let cond = match &operand {
                // A simple CASE compares with `=`: under SQL Server's rules for strings.
                Some(o) => {
                    let v = self.expr(&w.condition)?;
                    self.comparison(&w.condition, o.clone(), &BinaryOperator::Eq, v)?
                        .text
                }
                None => {
                    let c = self.expr(&w.condition)?;
                    if c.ty != Ty::Predicate {
                        return refuse(&w.condition, "WHEN needs a condition");
                    }
                    c.text
                }
            };
            let r = self.expr(&w.result)?;
            ty = merge(ty, r.ty);
            out.push_str(&format!(" WHEN {cond} THEN {}", r.text));
        }
        if let Some(e) = else_result {
            let r = self.expr(e)?;
            ty = merge(ty, r.ty);
            out.push_str(&format!(" ELSE {}", r.text));
        }
        out.push_str(" END");
        Ok(sql(out, ty))
    }
}

/// The type of a CASE or COALESCE from its branches (NULL takes the other's).
pub(crate) fn merge(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Null, t) | (t, Ty::Null) => t,
        (
            Ty::Str {
                ci: _,
                national: n1,
                col: k1,
            },
            Ty::Str {
                ci: _,
                national: n2,
                col: k2,
            },
        ) => Ty::Str {
            ci: case_insensitive(&[a, b]),
            national: n1 || n2,
            col: k1 || k2,
        },
        (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
        (Ty::Real, t) | (t, Ty::Real) if t.is_number() => Ty::Real,
        (Ty::Decimal, t) | (t, Ty::Decimal) if t.is_number() => Ty::Decimal,
        (t, _) => t,
    }
}

/// Whether strings of these types compare case-insensitively: a column's collation wins over a
/// constant's (the database default); columns that disagree are taken as case-insensitive.
pub(crate) fn case_insensitive(tys: &[Ty]) -> bool {
    let strs = || {
        tys.iter().filter_map(|t| match t {
            Ty::Str { ci, col, .. } => Some((*ci, *col)),
            _ => None,
        })
    };
    if strs().any(|(_, col)| col) {
        strs().any(|(ci, col)| col && ci)
    } else {
        strs().any(|(ci, _)| ci)
    }
}

/// A bit operand compared with the constant 0 or 1: the constant becomes false or true.
fn bit_side(s: Sql, other: &Sql, e: &Expr) -> Result<Sql, Refusal> {
    if other.ty == Ty::Bool && s.ty == Ty::Int {
        return match s.text.trim_matches(|c| c == '(' || c == ')') {
            "0" => Ok(sql("false", Ty::Bool)),
            "1" => Ok(sql("true", Ty::Bool)),
            _ => refuse(e, "bit compared with a value other than 0 or 1"),
        };
    }
    if s.ty == Ty::Bool && other.ty != Ty::Bool && other.ty != Ty::Int && other.ty != Ty::Null {
        return refuse(e, "bit compared with a non-integer");
    }
    Ok(s)
}

/// A string constant SQL Server reads as the same date under every DATEFORMAT and language:
/// `YYYYMMDD` (with `hh:mm:ss` after a space), and `YYYY-MM-DD` for the `date` type.
fn unambiguous_date(v: &str, ty: Ty) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let (day, time) = v.split_once(' ').unwrap_or((v, ""));
    let time_ok = time.is_empty()
        || (ty != Ty::Date
            && time.len() >= 5
            && time
                .split(':')
                .all(|p| digits(p.split('.').next().unwrap_or(""))));
    let basic = day.len() == 8 && digits(day);
    let iso_date = ty == Ty::Date
        && day.len() == 10
        && digits(&day.replace('-', ""))
        && day.matches('-').count() == 2;
    (basic || iso_date) && time_ok
}

/// A PostgreSQL string constant (standard_conforming_strings: only `'` is doubled).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The value of a constant [`literal`] wrote, if `text` is one.
pub(crate) fn string_literal(text: &str) -> Option<String> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

/// A T-SQL LIKE pattern with `[...]` classes as a SIMILAR TO pattern: `%` and `_` keep their
/// meaning, classes are copied, SIMILAR TO's own metacharacters are escaped.
fn similar_pattern(p: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                out.push('[');
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    if d == '\\' {
                        out.push('\\');
                    }
                    out.push(d);
                }
                if !closed {
                    return None;
                }
                out.push(']');
            }
            '|' | '*' | '+' | '?' | '{' | '}' | '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
