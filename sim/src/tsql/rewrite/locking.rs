//! Locking reads: which SELECTs may take PostgreSQL row locks to emulate SQL Server's locking
//! READ COMMITTED.

use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement, TableFactor};
use std::ops::ControlFlow;

use super::*;

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

pub(super) fn has_aggregate_or_window(items: &[SelectItem]) -> bool {
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
pub(super) fn can_lock_rows(stmt: &Statement) -> bool {
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
