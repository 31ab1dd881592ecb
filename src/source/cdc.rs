//! CDC reader: windows (last, max LSN] read from the capture instance's change table in
//! SQL Server's documented order; min LSN checked first; newer capture instances taken over.

use super::{query_rows, Tds};
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

/// The window query for one capture instance: `@P1` = last applied LSN (exclusive), `@P2` =
/// upper LSN (inclusive). Columns: `__$start_lsn`, `__$operation`, then every planned column.
/// Update before-images (operation 3) are skipped; the after-image carries the row.
pub fn changes_sql(plan: &TablePlan, instance: &str, utf16_safe: bool) -> String {
    format!(
        "SELECT [__$start_lsn], [__$operation], {} FROM cdc.{} \
         WHERE [__$start_lsn] > @P1 AND [__$start_lsn] <= @P2 AND [__$operation] <> 3 \
         ORDER BY [__$start_lsn], [__$command_id], [__$seqval], [__$operation]",
        plan.select_list(utf16_safe),
        quote_tsql(&format!("{instance}_CT"))
    )
}
