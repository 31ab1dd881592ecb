//! A view's query (`CREATE VIEW ... AS SELECT ...`) translated to PostgreSQL under the same
//! contract as expressions: the same rows, or a refusal naming the node.
//!
//! What translates: SELECT with DISTINCT, `*` and `t.*` (expanded), aliases, FROM with inner,
//! left, right, full and cross joins (nested), WHERE, GROUP BY, HAVING, scalar subqueries over
//! their own FROM, UNION [ALL], and `TOP 100 PERCENT ... ORDER BY` (which SQL Server ignores in a
//! view). Refused among others: DISTINCT, GROUP BY and UNION over case-insensitive text under a
//! case-sensitive target collation (PostgreSQL would keep `'a'` and `'A'` apart), ORDER BY
//! without it, TOP n, CTEs, derived tables, correlated subqueries, APPLY.

use super::{refuse, ExprColumn, Refusal, Scope, Translator, Ty};
use crate::model::{quote_pg, PgTableName, TableName, TargetKind};
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, JoinConstraint, JoinOperator, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, Statement, TableFactor,
    TableWithJoins, TopQuantity,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;

/// A table or view a query may read: its name on the target and its columns (unqualified).
#[derive(Debug, Clone)]
pub struct Relation {
    /// Where it is on the target.
    pub target: PgTableName,
    /// Its columns.
    pub columns: Vec<ExprColumn>,
}

/// A translated view.
#[derive(Debug, Clone)]
pub struct View {
    /// The view's name at the source.
    pub name: TableName,
    /// Its query in PostgreSQL.
    pub select: String,
    /// Its columns, as a relation other views can read.
    pub columns: Vec<ExprColumn>,
    /// The tables and views it reads.
    pub reads: Vec<TableName>,
}

/// What a query is translated against: the relations by source name, and how names are spelled.
pub struct Catalog<'a> {
    /// Finds a table or an already translated view.
    pub relation: &'a dyn Fn(&TableName) -> Option<Relation>,
    /// Target identifier case.
    pub case: crate::config::IdentifierCase,
    /// Text columns compare as SQL Server did (`mapping.collation = "preserve"`).
    pub preserve_collation: bool,
}

/// Translates `CREATE VIEW name AS query` (a view's definition as `sys.sql_modules` holds it).
pub fn translate_view(definition: &str, catalog: &Catalog<'_>) -> Result<View, Refusal> {
    let dialect = MsSqlDialect {};
    let statements = Parser::parse_sql(&dialect, definition).map_err(|e| Refusal {
        node: first_line(definition),
        reason: format!("not a view definition sqlparser reads: {e}"),
    })?;
    let [Statement::CreateView(v)] = statements.as_slice() else {
        return refuse(first_line(definition), "not one CREATE VIEW statement");
    };
    if !v.columns.is_empty() {
        return refuse(&v.name, "a view with a column list has no translation yet");
    }
    let name = object_name(&v.name);
    let mut reads = Vec::new();
    let (select, columns) = query(&v.query, catalog, &mut reads)?;
    if columns.iter().any(|c| c.target.is_empty()) {
        return refuse(&v.name, "a view column without a name");
    }
    Ok(View {
        name,
        select,
        columns,
        reads,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn object_name(n: &sqlparser::ast::ObjectName) -> TableName {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| {
                p.to_string()
                    .trim_matches(|c| c == '[' || c == ']' || c == '"')
                    .to_string()
            })
            .collect();
    match parts.as_slice() {
        [.., s, t] => TableName {
            schema: s.clone(),
            name: t.clone(),
        },
        [t] => TableName {
            schema: "dbo".into(),
            name: t.clone(),
        },
        [] => TableName {
            schema: "dbo".into(),
            name: String::new(),
        },
    }
}

/// A query: its PostgreSQL text and output columns.
fn query(
    q: &Query,
    catalog: &Catalog<'_>,
    reads: &mut Vec<TableName>,
) -> Result<(String, Vec<ExprColumn>), Refusal> {
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return refuse(
            q,
            "WITH, OFFSET/FETCH and locking clauses have no translation here",
        );
    }
    let top_all = matches!(&*q.body, SetExpr::Select(s) if is_top_100_percent(s));
    if q.order_by.is_some() && !top_all {
        return refuse(q, "ORDER BY in a view (SQL Server allows it only with TOP)");
    }
    set_expr(&q.body, catalog, reads)
}

fn is_top_100_percent(s: &Select) -> bool {
    s.top.as_ref().is_some_and(|t| {
        t.percent && !t.with_ties && matches!(&t.quantity, Some(TopQuantity::Constant(100)))
            || matches!(&t.quantity, Some(TopQuantity::Expr(e)) if e.to_string() == "100")
                && t.percent
    })
}

fn set_expr(
    body: &SetExpr,
    catalog: &Catalog<'_>,
    reads: &mut Vec<TableName>,
) -> Result<(String, Vec<ExprColumn>), Refusal> {
    match body {
        SetExpr::Select(s) => select(s, catalog, reads),
        SetExpr::Query(q) => {
            let (text, cols) = query(q, catalog, reads)?;
            Ok((format!("({text})"), cols))
        }
        SetExpr::SetOperation {
            left,
            op: SetOperator::Union,
            set_quantifier,
            right,
        } => {
            let (l, lcols) = set_expr(left, catalog, reads)?;
            let (r, rcols) = set_expr(right, catalog, reads)?;
            if lcols.len() != rcols.len() {
                return refuse(body, "the two sides of UNION have different column counts");
            }
            let all = matches!(set_quantifier, SetQuantifier::All);
            if !all && !catalog.preserve_collation && lcols.iter().chain(&rcols).any(ci_text) {
                return refuse(
                    body,
                    "UNION removes duplicates of case-insensitive text, which a case-sensitive target collation keeps apart (mapping.collation = \"preserve\" translates it)",
                );
            }
            Ok((
                format!("{l} UNION {}{r}", if all { "ALL " } else { "" }),
                lcols,
            ))
        }
        _ => refuse(body, "this kind of query has no translation"),
    }
}

fn ci_text(c: &ExprColumn) -> bool {
    matches!(c.kind, TargetKind::Text | TargetKind::Varchar(_)) && c.case_insensitive
}

/// The relations of a FROM clause, in order, each with the name the query qualifies it by.
fn relations(
    from: &[TableWithJoins],
    catalog: &Catalog<'_>,
    reads: &mut Vec<TableName>,
) -> Result<Vec<(String, Relation)>, Refusal> {
    let mut out = Vec::new();
    fn factor(
        f: &TableFactor,
        catalog: &Catalog<'_>,
        reads: &mut Vec<TableName>,
        out: &mut Vec<(String, Relation)>,
    ) -> Result<(), Refusal> {
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                with_hints,
                ..
            } if with_hints.is_empty() => {
                let source = object_name(name);
                let Some(rel) = (catalog.relation)(&source) else {
                    return refuse(f, format!("{source} is not migrated (or not translated)"));
                };
                if !reads.contains(&source) {
                    reads.push(source.clone());
                }
                let qualifier = match alias {
                    Some(a) if a.columns.is_empty() => a.name.value.clone(),
                    Some(_) => return refuse(f, "an alias with a column list"),
                    None => source.name.clone(),
                };
                out.push((qualifier, rel));
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => {
                factor(&table_with_joins.relation, catalog, reads, out)?;
                for j in &table_with_joins.joins {
                    factor(&j.relation, catalog, reads, out)?;
                }
                Ok(())
            }
            _ => refuse(f, "this kind of FROM item has no translation"),
        }
    }
    for t in from {
        factor(&t.relation, catalog, reads, &mut out)?;
        for j in &t.joins {
            factor(&j.relation, catalog, reads, &mut out)?;
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for (q, _) in &out {
        if seen.iter().any(|s| s.eq_ignore_ascii_case(q)) {
            return refuse(q, "the same name qualifies two relations");
        }
        seen.push(q.clone());
    }
    Ok(out)
}

/// The FROM clause in PostgreSQL, every relation aliased by the name the query uses.
fn from_sql(from: &[TableWithJoins], t: &Translator<'_>) -> Result<String, Refusal> {
    fn factor(f: &TableFactor, t: &Translator<'_>) -> Result<String, Refusal> {
        match f {
            TableFactor::Table { name, alias, .. } => {
                let source = object_name(name);
                let qualifier = alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or(source.name.clone());
                // The target name goes in later (`resolve_from`): a placeholder per qualifier.
                Ok(format!("{{{qualifier}}} AS {}", quote_pg(&qualifier)))
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => Ok(format!("({})", joined(table_with_joins, t)?)),
            _ => refuse(f, "this kind of FROM item has no translation"),
        }
    }
    fn joined(tj: &TableWithJoins, t: &Translator<'_>) -> Result<String, Refusal> {
        let mut out = factor(&tj.relation, t)?;
        for j in &tj.joins {
            let (kind, constraint) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => ("JOIN", Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT JOIN", Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT JOIN", Some(c)),
                JoinOperator::FullOuter(c) => ("FULL JOIN", Some(c)),
                JoinOperator::CrossJoin(JoinConstraint::None) => ("CROSS JOIN", None),
                _ => return refuse(&j.relation, "this kind of join has no translation"),
            };
            let right = factor(&j.relation, t)?;
            match constraint {
                None => out.push_str(&format!(" {kind} {right}")),
                Some(JoinConstraint::On(e)) => {
                    let on = t.expr(e)?;
                    if on.ty != Ty::Predicate {
                        return refuse(e, "ON needs a condition");
                    }
                    out.push_str(&format!(" {kind} {right} ON {}", on.text));
                }
                Some(_) => return refuse(&j.relation, "only ON joins translate"),
            }
        }
        Ok(out)
    }
    let parts: Vec<String> = from
        .iter()
        .map(|tj| joined(tj, t))
        .collect::<Result<_, _>>()?;
    Ok(parts.join(", "))
}

fn select(
    s: &Select,
    catalog: &Catalog<'_>,
    reads: &mut Vec<TableName>,
) -> Result<(String, Vec<ExprColumn>), Refusal> {
    if s.into.is_some()
        || !s.lateral_views.is_empty()
        || s.prewhere.is_some()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || !s.connect_by.is_empty()
        || (s.top.is_some() && !is_top_100_percent(s))
    {
        return refuse(s, "a clause of this SELECT has no translation");
    }
    let rels = relations(&s.from, catalog, reads)?;
    let mut columns = Vec::new();
    for (q, rel) in &rels {
        for c in &rel.columns {
            let mut c = c.clone();
            c.relation = Some((q.clone(), q.clone()));
            columns.push(c);
        }
    }
    let scope = Scope {
        columns,
        default_case_insensitive: true,
        nondeterministic: catalog.preserve_collation,
    };
    let t = Translator {
        scope: &scope,
        catalog: Some(catalog),
    };
    let (items, out_cols) = projection(&s.projection, &scope, &t, catalog)?;
    let mut text = String::from("SELECT ");
    let distinct = matches!(s.distinct, Some(Distinct::Distinct));
    if distinct {
        if !catalog.preserve_collation && out_cols.iter().any(ci_text) {
            return refuse(
                s,
                "DISTINCT over case-insensitive text, which a case-sensitive target collation keeps apart (mapping.collation = \"preserve\" translates it)",
            );
        }
        text.push_str("DISTINCT ");
    } else if s.distinct.is_some() {
        return refuse(s, "DISTINCT ON has no translation");
    }
    text.push_str(&items.join(", "));
    if !s.from.is_empty() {
        text.push_str(" FROM ");
        text.push_str(&resolve_from(&from_sql(&s.from, &t)?, &rels));
    }
    if let Some(w) = &s.selection {
        let w = t.expr(w)?;
        if w.ty != Ty::Predicate {
            return refuse(s, "WHERE needs a condition");
        }
        text.push_str(&format!(" WHERE {}", w.text));
    }
    match &s.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            if !exprs.is_empty() {
                let mut parts = Vec::new();
                for g in exprs {
                    let v = t.expr(g)?;
                    if matches!(v.ty, Ty::Str { ci: true, .. }) && !catalog.preserve_collation {
                        return refuse(
                            g,
                            "GROUP BY case-insensitive text, which a case-sensitive target collation keeps apart (mapping.collation = \"preserve\" translates it)",
                        );
                    }
                    parts.push(v.text);
                }
                text.push_str(&format!(" GROUP BY {}", parts.join(", ")));
            }
        }
        _ => return refuse(s, "this GROUP BY has no translation"),
    }
    if let Some(h) = &s.having {
        let h = t.expr(h)?;
        if h.ty != Ty::Predicate {
            return refuse(s, "HAVING needs a condition");
        }
        text.push_str(&format!(" HAVING {}", h.text));
    }
    Ok((text, out_cols))
}

/// The select list: each item in PostgreSQL (`*` and `t.*` expanded), and the output columns.
fn projection(
    projection: &[SelectItem],
    scope: &Scope,
    t: &Translator<'_>,
    catalog: &Catalog<'_>,
) -> Result<(Vec<String>, Vec<ExprColumn>), Refusal> {
    let mut items = Vec::new();
    let mut out_cols: Vec<ExprColumn> = Vec::new();
    let push_col = |rel_col: &ExprColumn, items: &mut Vec<String>, out: &mut Vec<ExprColumn>| {
        let (_, alias) = rel_col.relation.clone().unwrap_or_default();
        items.push(format!(
            "{}.{}",
            quote_pg(&alias),
            quote_pg(&rel_col.target)
        ));
        let mut c = rel_col.clone();
        c.relation = None;
        out.push(c);
    };
    for item in projection {
        match item {
            SelectItem::Wildcard(o) if o.to_string().is_empty() => {
                for c in &scope.columns {
                    push_col(c, &mut items, &mut out_cols);
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), o)
                if o.to_string().is_empty() =>
            {
                let q = object_name(n).name;
                let cols: Vec<&ExprColumn> = scope
                    .columns
                    .iter()
                    .filter(|c| {
                        c.relation
                            .as_ref()
                            .is_some_and(|(r, _)| r.eq_ignore_ascii_case(&q))
                    })
                    .collect();
                if cols.is_empty() {
                    return refuse(item, format!("no relation {q} in FROM"));
                }
                for c in cols {
                    push_col(c, &mut items, &mut out_cols);
                }
            }
            SelectItem::UnnamedExpr(e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
                let name = match e {
                    Expr::Identifier(i) => i.value.clone(),
                    Expr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.clone()).unwrap_or_default()
                    }
                    _ => unreachable!(),
                };
                let v = t.expr(e)?;
                let c = scope
                    .columns
                    .iter()
                    .find(|c| {
                        c.source.eq_ignore_ascii_case(&name)
                            && c.relation.as_ref().is_some_and(|(_, a)| {
                                v.text.starts_with(&format!("{}.", quote_pg(a)))
                            })
                    })
                    .cloned();
                let Some(mut c) = c else {
                    return refuse(e, "a column not found");
                };
                items.push(v.text);
                c.relation = None;
                out_cols.push(c);
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let v = t.expr(expr)?;
                if v.ty == Ty::Predicate {
                    return refuse(expr, "a condition as a value");
                }
                let target = crate::convert::target_identifier(&alias.value, catalog.case);
                items.push(format!("{} AS {}", v.text, quote_pg(&target)));
                out_cols.push(column_of(&alias.value, &target, v.ty));
            }
            // Unnamed: a later branch of a UNION (the first names the columns) or a scalar
            // subquery's value; SQL Server refuses a view whose own columns lack names.
            SelectItem::UnnamedExpr(e) => {
                let v = t.expr(e)?;
                if v.ty == Ty::Predicate {
                    return refuse(e, "a condition as a value");
                }
                items.push(v.text);
                out_cols.push(column_of("", "", v.ty));
            }
            _ => return refuse(item, "a select item of this form"),
        }
    }
    Ok((items, out_cols))
}

/// Puts each relation's target name where `from_sql` left its qualifier in braces.
fn resolve_from(from: &str, rels: &[(String, Relation)]) -> String {
    let mut out = from.to_string();
    for (q, rel) in rels {
        out = out.replacen(&format!("{{{q}}}"), &rel.target.sql(), 1);
    }
    out
}

/// An output column of a computed select item, typed as the translation found it.
fn column_of(source: &str, target: &str, ty: Ty) -> ExprColumn {
    let (kind, ci, national) = match ty {
        Ty::Str { ci, national, .. } => (TargetKind::Text, ci, national),
        Ty::Int => (TargetKind::Int8, false, false),
        Ty::Decimal => (TargetKind::Numeric(None), false, false),
        Ty::Float => (TargetKind::Float8, false, false),
        Ty::Real => (TargetKind::Float4, false, false),
        Ty::Bool => (TargetKind::Bool, false, false),
        Ty::Date => (TargetKind::Date, false, false),
        Ty::Time => (TargetKind::Time, false, false),
        Ty::Timestamp => (TargetKind::Timestamp, false, false),
        Ty::TimestampTz => (TargetKind::TimestampTz, false, false),
        Ty::Bytes => (TargetKind::Bytea, false, false),
        Ty::Uuid => (TargetKind::Uuid, false, false),
        Ty::Predicate | Ty::Null => (TargetKind::Text, true, false),
    };
    ExprColumn {
        source: source.to_string(),
        target: target.to_string(),
        kind,
        national,
        case_insensitive: ci,
        relation: None,
    }
}

/// Translates a scalar subquery `(SELECT one value FROM ...)` that reads only its own FROM.
pub(super) fn scalar_subquery(q: &Query, outer: &Translator<'_>) -> Result<super::Sql, Refusal> {
    let Some(catalog) = outer.catalog else {
        return refuse(q, "a subquery outside a view has no translation");
    };
    let mut reads = Vec::new();
    let (text, cols) = query(q, catalog, &mut reads)?;
    let [c] = cols.as_slice() else {
        return refuse(q, "a subquery of more than one column");
    };
    Ok(super::sql(
        format!("({text})"),
        Ty::of_kind(c.kind, c.case_insensitive, c.national),
    ))
}
