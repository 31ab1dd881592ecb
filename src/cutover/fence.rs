//! `cutover --fence-source`: the source refuses writes to the replicated tables while the
//! cutover drains, and after it succeeds.
//!
//! How: one `AFTER INSERT, UPDATE, DELETE` trigger per replicated table whose body is `THROW`,
//! all created in one source transaction. Creating a trigger takes a schema-modification lock,
//! so it waits for the transactions that are writing to the table: once the fence transaction
//! commits, every earlier write is committed and every later one fails, for every login
//! (sysadmins included), except a session that set `SESSION_CONTEXT(N'replicator_fallback')` to 1:
//! the fallback's, which writes PostgreSQL's changes back ([`BYPASS_KEY`]). The database stays
//! writable, so the CDC capture job keeps harvesting the log up to the fence, which
//! `ALTER DATABASE ... SET READ_ONLY` would stop.
//!
//! Contract: [`raise`] and [`lower`] are idempotent (`CREATE OR ALTER`, `DROP ... IF EXISTS`);
//! the triggers are named `replicator_fence_<object_id>` so [`leftovers`] finds a fence that an
//! interrupted cutover left behind. `TRUNCATE TABLE` and bulk loads without `FIRE_TRIGGERS` do
//! not fire triggers and so pass the fence (the drain then reports a CT retention loss or a
//! difference; nothing is skipped silently).

use crate::error::Error;
use crate::model::{quote_tsql, tsql_literal, TableName};
use crate::source::{self, Tds};
use serde::Serialize;
use std::time::Duration;

/// The prefix of every fence trigger's name.
pub const PREFIX: &str = "replicator_fence_";

/// SQL Server error number the fence throws (user range, above 50000).
pub const ERROR_NUMBER: i32 = 51000;

pub use crate::model::FENCE_BYPASS_KEY as BYPASS_KEY;

/// A raised fence: the tables it covers and how to undo it.
#[derive(Debug, Clone, Serialize)]
pub struct Fence {
    /// Fenced source tables.
    pub tables: Vec<String>,
    /// T-SQL that removes the fence (run it against the source database to allow writes again).
    pub undo_sql: String,
    /// Whether the fence was removed again (after a failed cutover).
    pub lowered: bool,
}

/// `[schema].[replicator_fence_<object_id>]`: the trigger of one table.
fn trigger_name(table: &TableName, object_id: i32) -> String {
    format!(
        "{}.{}",
        quote_tsql(&table.schema),
        quote_tsql(&format!("{PREFIX}{}", object_id as u32))
    )
}

fn undo_sql(triggers: &[String]) -> String {
    triggers
        .iter()
        .map(|t| format!("DROP TRIGGER IF EXISTS {t};"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Creates the fence on `tables` (name and `object_id`) in one transaction, waiting at most
/// `lock_wait` for the writers in flight. On error nothing is fenced.
pub async fn raise(
    tds: &mut Tds,
    tables: &[(TableName, i32)],
    lock_wait: Duration,
) -> Result<Fence, Error> {
    let ms = lock_wait.as_millis().clamp(1, i32::MAX as u128);
    source::execute(
        tds,
        &format!("SET LOCK_TIMEOUT {ms}"),
        "set the fence's lock wait",
    )
    .await?;
    source::execute(tds, "BEGIN TRANSACTION", "begin the fence").await?;
    let mut triggers = Vec::new();
    for (table, object_id) in tables {
        let trigger = trigger_name(table, *object_id);
        let message = format!(
            "writes to {table} are fenced: replicator cutover is moving it to PostgreSQL. \
             To allow writes here again: DROP TRIGGER {trigger}"
        );
        // CREATE TRIGGER must open its batch: one batch per table, one transaction for all.
        let sql = format!(
            "CREATE OR ALTER TRIGGER {trigger} ON {} AFTER INSERT, UPDATE, DELETE AS \
             BEGIN IF SESSION_CONTEXT(N'{BYPASS_KEY}') = 1 RETURN; THROW {ERROR_NUMBER}, {}, 1; END",
            table.tsql(),
            tsql_literal(&message)
        );
        if let Err(e) = source::execute(tds, &sql, &format!("fence {table}")).await {
            let _ = source::execute(tds, "IF @@TRANCOUNT > 0 ROLLBACK", "undo the fence").await;
            return Err(e);
        }
        triggers.push(trigger);
    }
    source::execute(tds, "COMMIT", "commit the fence").await?;
    Ok(Fence {
        tables: tables.iter().map(|(t, _)| t.to_string()).collect(),
        undo_sql: undo_sql(&triggers),
        lowered: false,
    })
}

/// Removes the fence; idempotent.
pub async fn lower(tds: &mut Tds, fence: &mut Fence) -> Result<(), Error> {
    source::execute(tds, &fence.undo_sql, "remove the fence").await?;
    fence.lowered = true;
    Ok(())
}

/// Fence triggers present on the source (`(table, DROP statement)`): left by a cutover that
/// succeeded or was interrupted.
pub async fn leftovers(tds: &mut Tds) -> Result<Vec<(String, String)>, Error> {
    let rows = source::query_rows(
        tds,
        "SELECT s.name, o.name, tr.name FROM sys.triggers tr \
         JOIN sys.objects o ON o.object_id = tr.parent_id JOIN sys.schemas s ON s.schema_id = o.schema_id \
         WHERE tr.name LIKE N'replicator!_fence!_%' ESCAPE '!' ORDER BY s.name, o.name",
        "list fence triggers",
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let s: &str = r.try_get(0).ok().flatten().unwrap_or("");
            let t: &str = r.try_get(1).ok().flatten().unwrap_or("");
            let tr: &str = r.try_get(2).ok().flatten().unwrap_or("");
            (
                format!("{s}.{t}"),
                format!(
                    "DROP TRIGGER IF EXISTS {}.{};",
                    quote_tsql(s),
                    quote_tsql(tr)
                ),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_names_quote_hostile_schemas_and_undo_lists_each() {
        let t = TableName {
            schema: "a]b".into(),
            name: "x".into(),
        };
        let name = trigger_name(&t, -5);
        assert_eq!(name, "[a]]b].[replicator_fence_4294967291]");
        assert_eq!(
            undo_sql(&[name.clone(), "[dbo].[replicator_fence_7]".into()]),
            format!("DROP TRIGGER IF EXISTS {name};\nDROP TRIGGER IF EXISTS [dbo].[replicator_fence_7];")
        );
    }
}
