//! CHANGETABLE(...) and the CDC change functions, as derived tables over the simulator's
//! Change Tracking and CDC storage.

use crate::types::TsqlType;
use crate::value::pg_quote;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, Statement, TableFactor,
    Value as AstValue,
};
use std::ops::ControlFlow;

use super::*;

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

/// The parts of a `CHANGETABLE('CHANGES'|'VERSION', 'name', ...)` table factor (the pre-pass form).
pub(super) fn changetable_call(tf: &TableFactor) -> Option<(String, String, Vec<Expr>)> {
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
pub(super) fn changetable_aliases(stmt: &Statement) -> Vec<(String, String, String)> {
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
pub(super) fn replace_with_derived(tf: &mut TableFactor, sql: String) {
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
pub(super) fn cdc_function_call(tf: &TableFactor) -> Option<(bool, String, Vec<Expr>)> {
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
pub(super) fn key_cast(col: &str, ty: &TsqlType) -> String {
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

pub(super) fn pg_ident_lower(name: &str) -> String {
    format!("\"{}\"", name.to_lowercase().replace('"', "\"\""))
}

impl Rewriter<'_> {
    /// The derived table that stands for a CDC change function: all changes in LSN order
    /// ('all' gives only after-images of updates, 'all update old' both), or net changes (the
    /// final operation per key over the window).
    pub(super) fn cdc_changes_sql(
        &self,
        net: bool,
        ci: &str,
        args: &[Expr],
    ) -> Result<String, RewriteError> {
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
    pub(super) fn changetable_sql(
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
