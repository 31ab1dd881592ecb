//! T-SQL's joined UPDATE and DELETE forms, restated as PostgreSQL's UPDATE ... FROM and
//! DELETE ... USING.

use sqlparser::ast::{BinaryOperator, Expr, Statement, TableFactor};

use super::*;

pub(super) fn factor_matches(tf: &TableFactor, target: &str) -> bool {
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

pub(super) fn and(a: Option<Expr>, b: Expr) -> Option<Expr> {
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
pub(super) fn inner_condition(
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
pub(super) fn extract_target(
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
pub(super) fn restructure_joined_dml(stmt: &mut Statement) -> Result<(), RewriteError> {
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
