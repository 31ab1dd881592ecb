//! Schema changes while streaming: a new column becomes `ALTER TABLE ... ADD COLUMN` on the target
//! (its values backfilled from the source), a dropped column stays on the target (nullable from
//! then on) and is logged, a changed type stops the table with a reason and a hint.

use super::{Shared, TableRt};
use crate::convert::{plan_table, TablePlan};
use crate::error::{Context, Error};
use crate::model::{quote_pg, SourceColumn};
use std::sync::Arc;

/// How a table's columns differ from its plan.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Columns that appeared.
    pub added: Vec<String>,
    /// Columns that disappeared.
    pub dropped: Vec<String>,
    /// (column, was, is) for columns whose type or nullability changed.
    pub changed: Vec<(String, String, String)>,
}

impl Diff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty() && self.changed.is_empty()
    }
}

/// Compares the planned source columns with what the source has now.
pub fn compare(old: &[SourceColumn], now: &[SourceColumn]) -> Diff {
    let mut d = Diff::default();
    for n in now {
        match old.iter().find(|o| o.name == n.name) {
            None => d.added.push(n.name.clone()),
            Some(o) if o.source_type != n.source_type => d.changed.push((
                n.name.clone(),
                o.source_type.declaration(),
                n.source_type.declaration(),
            )),
            _ => {}
        }
    }
    for o in old {
        if !now.iter().any(|n| n.name == o.name) {
            d.dropped.push(o.name.clone());
        }
    }
    d
}

/// Applies a difference on the target inside the window's transaction and returns the new plan
/// and the source names of added columns (whose values the caller backfills).
pub async fn apply(
    shared: &Shared,
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    rt: &TableRt,
    now: Vec<SourceColumn>,
    diff: &Diff,
) -> Result<(Arc<TablePlan>, Vec<String>), Error> {
    let plan = &rt.plan;
    if now.is_empty() {
        return Err(Error::table(
            name,
            "the table no longer exists at the source",
            Some("remove it from [[tables]] (its target table is kept), then restart"),
        ));
    }
    if let Some((col, was, is)) = diff.changed.first() {
        return Err(Error::table(
            name,
            format!("column {col} changed type from {was} to {is} at the source"),
            Some(&format!("the target column is never altered: adjust it or the mapping, then run `replicator resync --table {name}`")),
        ));
    }
    let cfg = &shared.config;
    let mut source = plan.source.clone();
    source.columns = now;
    let selector = cfg
        .tables
        .get(plan.selector)
        .ok_or_else(|| Error::Fatal("the table's [[tables]] entry is gone".into()))?;
    let mut new_plan = plan_table(&source, selector, plan.selector, &cfg.mapping)
        .map_err(|m| Error::table(name, m, None))?;
    // A column the target holds as values stays one; a computed column added now is added
    // generated (PostgreSQL computes it for the rows already there).
    new_plan.keep_plain(|t| plan.columns.iter().any(|c| c.target == t));
    for g in &new_plan.generated {
        if plan.generated.iter().any(|o| o.target == g.target) {
            continue;
        }
        tx.batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {} GENERATED ALWAYS AS ({}) STORED",
            new_plan.target.sql(),
            quote_pg(&g.target),
            g.kind.ddl(),
            g.expr
        ))
        .await
        .context(|| format!("add generated column {} to {}", g.target, new_plan.target))?;
        tracing::warn!(table = name, column = %g.source, "computed column added at the source: added to the target, generated");
        shared.store.journal(
            "schema_change",
            Some(name),
            format!(
                "computed column {} added; generated on the target as {}",
                g.source, g.expr
            ),
        )?;
    }
    let mut added = Vec::new();
    for c in &new_plan.columns {
        if plan.columns.iter().any(|o| o.source == c.source) {
            continue;
        }
        let default = source
            .columns
            .iter()
            .find(|s| s.name == c.source)
            .and_then(|s| s.default.as_deref())
            .and_then(|d| crate::sink::ddl::translate_default(d, c));
        // The default is set after the column is added: `ADD COLUMN ... DEFAULT` would fill
        // the existing rows with it, where SQL Server leaves a nullable column NULL (unless
        // `WITH VALUES`, whose values the backfill then copies like any other).
        let sql = format!(
            "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {col} {ty};{set_default}",
            t = new_plan.target.sql(),
            col = quote_pg(&c.target),
            ty = c.column_type(),
            set_default = default
                .map(|d| format!(
                    " ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {d};",
                    new_plan.target.sql(),
                    quote_pg(&c.target)
                ))
                .unwrap_or_default()
        );
        tx.batch_execute(&sql)
            .await
            .context(|| format!("add column {} to {}", c.target, new_plan.target))?;
        added.push(c.source.clone());
        tracing::warn!(table = name, column = %c.source, "column added at the source: added to the target, values backfilled");
        shared.store.journal(
            "schema_change",
            Some(name),
            format!(
                "column {} added; target column {} {} added",
                c.source,
                c.target,
                c.kind.ddl()
            ),
        )?;
    }
    for d in &diff.dropped {
        if let Some(c) = plan.columns.iter().find(|c| &c.source == d) {
            tx.batch_execute(&format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                plan.target.sql(),
                quote_pg(&c.target)
            ))
            .await
            .context(|| format!("relax {} on {}", c.target, plan.target))?;
            tracing::warn!(table = name, column = %d, "column dropped at the source: kept on the target with its values, nullable from now on");
            shared.store.journal(
                "schema_change",
                Some(name),
                format!(
                    "column {d} dropped at the source; target column {} kept",
                    c.target
                ),
            )?;
        }
    }
    Ok((Arc::new(new_plan), added))
}

/// `WHERE` clause selecting rows that hold a value in any added column (the backfill).
pub fn backfill_filter(added: &[String]) -> String {
    added
        .iter()
        .map(|c| format!("{} IS NOT NULL", crate::model::quote_tsql(c)))
        .collect::<Vec<_>>()
        .join(" OR ")
}
