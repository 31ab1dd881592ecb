//! Change Tracking reader, per Microsoft's documented pattern: one SNAPSHOT transaction per
//! window; min valid versions checked first; upper bound = CHANGE_TRACKING_CURRENT_VERSION();
//! CHANGETABLE joined with the current rows.

use super::{query_params, query_rows, Tds};
use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::model::quote_tsql;
use std::collections::HashMap;

/// `CHANGE_TRACKING_CURRENT_VERSION()`; `None` when Change Tracking is off for the database.
pub async fn current_version(tds: &mut Tds) -> Result<Option<i64>, Error> {
    let rows = query_rows(
        tds,
        "SELECT CAST(CHANGE_TRACKING_CURRENT_VERSION() AS bigint)",
        "read CHANGE_TRACKING_CURRENT_VERSION()",
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten()))
}

/// `CHANGE_TRACKING_MIN_VALID_VERSION` of every tracked table, by object id.
pub async fn min_valid_versions(tds: &mut Tds) -> Result<HashMap<i32, i64>, Error> {
    let rows = query_rows(
        tds,
        "SELECT t.object_id, CAST(CHANGE_TRACKING_MIN_VALID_VERSION(t.object_id) AS bigint) \
         FROM sys.change_tracking_tables t",
        "read Change Tracking min valid versions",
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id: i32 = r.try_get(0).ok().flatten()?;
            let v: i64 = r.try_get(1).ok().flatten()?;
            Some((id, v))
        })
        .collect())
}

/// Milliseconds since the oldest commit in versions (after, upto], by the source's clock;
/// `None` when there is none. Lag is measured from it.
pub async fn age_ms(tds: &mut Tds, after: i64, upto: i64) -> Result<Option<i64>, Error> {
    let rows = query_params(
        tds,
        "SELECT DATEDIFF_BIG(millisecond, MIN(commit_time), SYSDATETIME()) \
         FROM sys.dm_tran_commit_table WHERE commit_ts > @P1 AND commit_ts <= @P2"
            .into(),
        &[&after, &upto],
        "read the commit time of the oldest change",
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten()))
}

/// The window query for one table: `@P1` = last applied version, `@P2` = upper bound.
/// Columns: `SYS_CHANGE_VERSION`, then `[d]` (1 when the row no longer exists), the key from
/// CHANGETABLE (as the target reads it), then every planned column of the current row.
pub fn changes_sql(plan: &TablePlan, utf16_safe: bool) -> String {
    let keys: Vec<&crate::convert::ColumnPlan> = plan.key_columns().collect();
    let ct_keys: Vec<String> = keys
        .iter()
        .map(|c| {
            let e = match (&c.utf16_expr, utf16_safe) {
                (Some(u), true) => u.clone(),
                _ => c.read_expr.clone(),
            };
            // The key expressions name the column unqualified: point them at CT's copy.
            e.replace(
                &quote_tsql(&c.source),
                &format!("CT.{}", quote_tsql(&c.source)),
            )
        })
        .collect();
    let inner_keys: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} AS [__k{i}]", quote_tsql(&c.source)))
        .collect();
    let join: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, c)| format!("CT.{} = T.[__k{i}]", quote_tsql(&c.source)))
        .collect();
    let cols: Vec<String> = (0..plan.columns.len())
        .map(|i| format!("T.[c{i}]"))
        .collect();
    format!(
        "SELECT CT.SYS_CHANGE_VERSION, CAST(CASE WHEN T.[__k0] IS NULL THEN 1 ELSE 0 END AS int), {}, {} \
         FROM CHANGETABLE(CHANGES {t}, @P1) AS CT \
         LEFT OUTER JOIN (SELECT {}, {} FROM {t}) AS T ON {} \
         WHERE CT.SYS_CHANGE_VERSION <= @P2",
        ct_keys.join(", "),
        cols.join(", "),
        plan.select_list(utf16_safe),
        inner_keys.join(", "),
        join.join(" AND "),
        t = plan.source.name.tsql()
    )
}

/// The keys changed after version `@P1` (as the target reads them), one row per key.
pub fn changed_keys_sql(plan: &TablePlan) -> String {
    let keys: Vec<String> = plan
        .key_columns()
        .map(|c| {
            c.read_expr.replace(
                &quote_tsql(&c.source),
                &format!("CT.{}", quote_tsql(&c.source)),
            )
        })
        .collect();
    format!(
        "SELECT {} FROM CHANGETABLE(CHANGES {}, @P1) AS CT",
        keys.join(", "),
        plan.source.name.tsql()
    )
}

/// Opens a window's SNAPSHOT transaction and reads its upper bound.
pub async fn begin_window(tds: &mut Tds) -> Result<Option<i64>, Error> {
    super::execute(
        tds,
        "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION",
        "begin a Change Tracking window (needs ALLOW_SNAPSHOT_ISOLATION ON)",
    )
    .await?;
    current_version(tds).await
}

/// Ends the window's transaction (read-only: commit and rollback are the same).
pub async fn end_window(tds: &mut Tds) -> Result<(), Error> {
    tds.simple_query("IF @@TRANCOUNT > 0 COMMIT")
        .await
        .context(|| "end a Change Tracking window".into())?
        .into_results()
        .await
        .context(|| "end a Change Tracking window".into())?;
    Ok(())
}
