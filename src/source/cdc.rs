//! CDC reader: windows (last, max LSN] read from the capture instance's change table in
//! SQL Server's documented order; min LSN checked first; newer capture instances taken over.

use super::{query_params, query_rows, Tds};
use crate::convert::TablePlan;
use crate::error::Error;
use crate::model::{quote_tsql, tsql_literal, Lsn};

/// `sys.fn_cdc_get_max_lsn()`; `None` before the capture job first ran.
pub async fn max_lsn(tds: &mut Tds) -> Result<Option<Lsn>, Error> {
    let rows = query_rows(
        tds,
        "SELECT sys.fn_cdc_get_max_lsn()",
        "read the CDC max LSN",
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<&[u8], _>(0).ok().flatten())
        .and_then(Lsn::from_slice))
}

/// A point in time on the source's clock, just after every transaction committed so far, as a
/// T-SQL `datetime` expression for [`capture_progress`].
pub async fn commit_horizon(tds: &mut Tds) -> Result<String, Error> {
    let what = "read the source's clock";
    let rows = query_rows(tds, "SELECT DATEADD(millisecond, 10, SYSDATETIME())", what).await?;
    let now: chrono::NaiveDateTime = rows
        .first()
        .and_then(|r| r.try_get(0).ok().flatten())
        .ok_or_else(|| Error::Fatal(format!("{what}: no value")))?;
    Ok(format!(
        "CAST(CAST('{}' AS datetime2(7)) AS datetime)",
        now.format("%Y-%m-%d %H:%M:%S%.6f")
    ))
}

/// The max LSN, and the first LSN the capture job mapped to a commit (or an idle marker) at or
/// after `horizon` ([`commit_horizon`]), if any. The job reads the log in order, so once it has
/// mapped one that is new, every transaction committed before the horizon is in the change
/// tables.
pub async fn capture_progress(
    tds: &mut Tds,
    horizon: &str,
) -> Result<(Option<Lsn>, Option<Lsn>), Error> {
    let rows = query_rows(
        tds,
        &format!(
            "SELECT sys.fn_cdc_get_max_lsn(), \
                    sys.fn_cdc_map_time_to_lsn('smallest greater than or equal', {horizon})"
        ),
        "read the CDC capture job's progress",
    )
    .await?;
    let lsn = |i: usize| {
        rows.first()
            .and_then(|r| r.try_get::<&[u8], _>(i).ok().flatten())
            .and_then(Lsn::from_slice)
            .filter(|l| l.0.iter().any(|b| *b != 0))
    };
    Ok((lsn(0), lsn(1)))
}

/// The capture job's polling interval (`msdb.dbo.cdc_jobs`), when this login may read it.
pub async fn polling_interval(tds: &mut Tds) -> Option<std::time::Duration> {
    let rows = query_rows(
        tds,
        "SELECT pollinginterval FROM msdb.dbo.cdc_jobs \
         WHERE database_id = DB_ID() AND job_type = N'capture'",
        "read the CDC capture job's polling interval",
    )
    .await
    .ok()?;
    let secs: i64 = rows.first()?.try_get(0).ok().flatten()?;
    Some(std::time::Duration::from_secs(secs.max(0) as u64))
}

/// `sys.fn_cdc_get_min_lsn(instance)`: all zeros when the instance does not exist.
pub async fn min_lsn(tds: &mut Tds, instance: &str) -> Result<Option<Lsn>, Error> {
    let rows = query_rows(
        tds,
        &format!("SELECT sys.fn_cdc_get_min_lsn({})", tsql_literal(instance)),
        "read a CDC min LSN",
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<&[u8], _>(0).ok().flatten())
        .and_then(Lsn::from_slice))
}

/// Milliseconds since the oldest transaction in LSNs (after, upto] ended, by the source's clock;
/// `None` when there is none. Lag is measured from it.
pub async fn age_ms(tds: &mut Tds, after: Lsn, upto: Lsn) -> Result<Option<i64>, Error> {
    let rows = query_params(
        tds,
        "SELECT DATEDIFF_BIG(millisecond, MIN(tran_end_time), SYSDATETIME()) \
         FROM cdc.lsn_time_mapping WHERE start_lsn > @P1 AND start_lsn <= @P2"
            .into(),
        &[&after.0.to_vec(), &upto.0.to_vec()],
        "read the commit time of the oldest captured change",
    )
    .await?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get::<i64, _>(0).ok().flatten()))
}

/// Where a window ends: `max`, or an earlier source transaction's commit LSN when some
/// instance in `behind` (instance, last applied LSN) has more than `batch_rows` change rows up to
/// `max`. Every table shares the end, so a source transaction is never split across windows;
/// one transaction larger than `batch_rows` is applied whole. One round trip.
pub async fn window_end(
    tds: &mut Tds,
    behind: &[(&str, Lsn)],
    max: Lsn,
    batch_rows: usize,
) -> Result<Lsn, Error> {
    if behind.is_empty() {
        return Ok(max);
    }
    let mut parts = Vec::new();
    let mut params: Vec<Vec<u8>> = vec![max.0.to_vec()];
    for (instance, last) in behind {
        params.push(last.0.to_vec());
        // The LSN of the batch_rows-th change row after `last`, if there are that many.
        parts.push(format!(
            "SELECT l FROM (SELECT [__$start_lsn] AS l FROM cdc.{} \
             WHERE [__$start_lsn] > @P{} AND [__$start_lsn] <= @P1 ORDER BY [__$start_lsn] \
             OFFSET {} ROWS FETCH NEXT 1 ROWS ONLY) AS w{}",
            quote_tsql(&format!("{instance}_CT")),
            params.len(),
            batch_rows.saturating_sub(1),
            parts.len()
        ));
    }
    let refs: Vec<&dyn tiberius::ToSql> =
        params.iter().map(|p| p as &dyn tiberius::ToSql).collect();
    let rows = query_params(
        tds,
        parts.join(" UNION ALL "),
        &refs,
        "find where a CDC window ends",
    )
    .await?;
    let mut end = max;
    for r in rows {
        if let Some(l) = r
            .try_get::<&[u8], _>(0)
            .ok()
            .flatten()
            .and_then(Lsn::from_slice)
        {
            end = end.min(l);
        }
    }
    Ok(end)
}

/// Which LSNs a window query reads: `@P1` and `@P2` bound it.
#[derive(Debug, Clone, Copy)]
pub enum Range {
    /// `@P1 < lsn <= @P2`: from the last applied LSN to the upper bound.
    UpTo,
    /// `@P1 < lsn < @P2`: from the last applied LSN to a newer instance's start.
    Before,
    /// `@P1 <= lsn <= @P2`: from a newer instance's start to the upper bound.
    From,
}

/// The window query for one capture instance. Columns: `__$start_lsn`, `__$operation`, then
/// every planned column. Rows come in SQL Server's documented order.
///
/// What a change table does not hold (the `cdc.<capture_instance>_CT` page) is never read from
/// it: update before-images (operation 3, where LOB columns are NULL unless they changed) are
/// skipped and deletes (1, where text/ntext/image are NULL) give only their key; inserts (2) and
/// after-images (4) hold every stored value, LOBs included, so a NULL there is a stored NULL.
/// Computed columns, always NULL in a change table, come from [`ColumnPlan::change_expr`].
///
/// [`ColumnPlan::change_expr`]: crate::convert::ColumnPlan::change_expr
pub fn changes_sql(plan: &TablePlan, instance: &str, range: Range) -> String {
    let (lo, hi) = match range {
        Range::UpTo => (">", "<="),
        Range::Before => (">", "<"),
        Range::From => (">=", "<="),
    };
    let columns: Vec<String> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{} AS [c{i}]",
                c.change_expr.as_ref().unwrap_or(&c.read_expr)
            )
        })
        .collect();
    format!(
        "SELECT __ct.[__$start_lsn], __ct.[__$operation], {} FROM cdc.{} AS __ct \
         WHERE __ct.[__$start_lsn] {lo} @P1 AND __ct.[__$start_lsn] {hi} @P2 AND __ct.[__$operation] <> 3 \
         ORDER BY __ct.[__$start_lsn], __ct.[__$command_id], __ct.[__$seqval], __ct.[__$operation]",
        columns.join(", "),
        quote_tsql(&format!("{instance}_CT"))
    )
}

/// The keys changed after LSN `@P1` in a capture instance (as the target reads them).
pub fn changed_keys_sql(plan: &TablePlan, instance: &str) -> String {
    let keys: Vec<String> = plan.key_columns().map(|c| c.read_expr.clone()).collect();
    format!(
        "SELECT DISTINCT {} FROM cdc.{} WHERE [__$start_lsn] > @P1",
        keys.join(", "),
        quote_tsql(&format!("{instance}_CT"))
    )
}

/// Every capture instance by source object id, oldest first, with its start LSN.
pub async fn instances(
    tds: &mut Tds,
) -> Result<std::collections::BTreeMap<i32, Vec<(String, Lsn)>>, Error> {
    let rows = query_rows(
        tds,
        "SELECT source_object_id, capture_instance, start_lsn FROM cdc.change_tables ORDER BY source_object_id, create_date, object_id",
        "read CDC capture instances",
    )
    .await?;
    let mut out: std::collections::BTreeMap<i32, Vec<(String, Lsn)>> = Default::default();
    for r in rows {
        let (Some(id), Some(name)) = (
            r.try_get::<i32, _>(0).ok().flatten(),
            r.try_get::<&str, _>(1).ok().flatten(),
        ) else {
            continue;
        };
        let lsn = r
            .try_get::<&[u8], _>(2)
            .ok()
            .flatten()
            .and_then(Lsn::from_slice)
            .unwrap_or(Lsn([0; 10]));
        out.entry(id).or_default().push((name.to_string(), lsn));
    }
    Ok(out)
}
