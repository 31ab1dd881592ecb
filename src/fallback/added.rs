//! A column added on PostgreSQL during the fallback: a nullable one is added on SQL Server (a
//! type whose default mapping is the PostgreSQL type again) and backfilled with the values
//! PostgreSQL holds now, before the window that first carries it is applied; anything else
//! (NOT NULL, a type without a counterpart) stops that table alone, naming it and the column.
//!
//! Why the backfill: `ADD COLUMN ... DEFAULT` fills existing rows without a row change in the
//! WAL, so the slot never carries those values. Values read now may be newer than the window
//! being applied; every later change of those rows is still in the slot, so SQL Server ends
//! where PostgreSQL is once it drained.
//!
//! Crash safety: the column is recorded as pending in the fallback's record before it is added
//! on SQL Server, and cleared after its backfill committed; pending backfills run before any
//! window, so a kill between the two never leaves SQL Server without those values.

use super::decode::Cell;
use super::net::{End, KeyText, TableChanges, Window};
use super::stream::Session;
use crate::convert::TablePlan;
use crate::daemon::Shared;
use crate::error::{Context, Error};
use crate::model::{quote_pg, quote_tsql};
use crate::state::FallbackRecord;

/// Adds the columns the window's relations have and SQL Server has not, then runs every
/// pending backfill (these and any a crash left); whether anything was done, and the tables
/// (source `schema.table`) with a column that cannot go back, each with why: those stop alone.
pub async fn columns(
    shared: &Shared,
    s: &mut Session,
    rec: &mut FallbackRecord,
    w: &Window,
) -> Result<(bool, Vec<(String, Error)>), Error> {
    let mut added = false;
    let mut refused: Vec<(String, Error)> = Vec::new();
    for rel in w.relations.values() {
        let Some(plan) = s
            .plans
            .iter()
            .find(|p| p.target.schema == rel.schema && p.target.name == rel.name)
        else {
            continue;
        };
        for col in &rel.columns {
            if plan.columns.iter().any(|c| c.target == col.name) {
                continue;
            }
            let sql_type = match counterpart(s, plan, &col.name).await {
                Ok(t) => t,
                Err(e) if e.kind() == crate::error::ErrorKind::Table => {
                    refused.push((plan.source.name.to_string(), e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let pending = (plan.target.to_string(), col.name.clone());
            if !rec.pending_backfills.contains(&pending) {
                rec.pending_backfills.push(pending);
                shared.store.set_fallback(rec)?;
            }
            crate::source::execute(
                &mut s.tds,
                &format!(
                    "ALTER TABLE {} ADD {} {sql_type} NULL",
                    plan.source.name.tsql(),
                    quote_tsql(&col.name)
                ),
                &format!("fallback: add column {} to {}", col.name, plan.source.name),
            )
            .await?;
            shared.store.journal(
                "fallback_column_added",
                Some(&plan.source.name.to_string()),
                format!("column {} added on SQL Server as {sql_type}", col.name),
            )?;
            added = true;
        }
    }
    if added {
        s.replan(shared).await?;
    }
    Ok((backfill_pending(shared, s, rec).await? || added, refused))
}

/// Runs the backfills the record holds as pending (a crash may have left one); whether any.
pub async fn backfill_pending(
    shared: &Shared,
    s: &mut Session,
    rec: &mut FallbackRecord,
) -> Result<bool, Error> {
    let pending = rec.pending_backfills.clone();
    for (table, column) in &pending {
        let plan = s
            .plans
            .iter()
            .find(|p| &p.target.to_string() == table)
            .cloned()
            .ok_or_else(|| {
                Error::Fatal(format!(
                    "fallback: table {table}, whose column {column} waits for its backfill, is not migrated"
                ))
            })?;
        backfill(s, &plan, column).await?;
        rec.pending_backfills
            .retain(|p| p != &(table.clone(), column.clone()));
        shared.store.set_fallback(rec)?;
    }
    Ok(!pending.is_empty())
}

/// The SQL Server type of an added column; `Err` (naming table and column) when it cannot go
/// back.
async fn counterpart(s: &Session, plan: &TablePlan, column: &str) -> Result<String, Error> {
    let name = plan.source.name.to_string();
    let row =
        s.pg.query_one(
            "SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a \
             WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped",
            &[&plan.target.sql(), &column],
        )
        .await
        .context(|| format!("fallback: read column {column} of {}", plan.target))?;
    let (ty, not_null): (String, bool) = (row.get(0), row.get(1));
    let stop = |why: String| {
        Error::table(
            &name,
            format!("fallback: column {column} was added on PostgreSQL: {why}"),
            Some("drop it on PostgreSQL (its values cannot go back), or stop the fallback (replicator fallback stop)"),
        )
    };
    if not_null {
        return Err(stop(
            "it is NOT NULL; only a nullable added column is carried".into(),
        ));
    }
    super::inverse::sql_server_type(&ty)
        .ok_or_else(|| stop(format!("its type {ty} has no SQL Server counterpart here")))
}

/// The added column's values PostgreSQL holds now, written to SQL Server's rows by key (one
/// SQL Server transaction, as a window).
async fn backfill(s: &mut Session, plan: &TablePlan, column: &str) -> Result<(), Error> {
    let keys: Vec<&str> = plan.key_columns().map(|c| c.target.as_str()).collect();
    let select: Vec<String> = keys
        .iter()
        .chain(std::iter::once(&column))
        .map(|c| format!("{}::text", quote_pg(c)))
        .collect();
    let rows =
        s.pg.simple_query(&format!(
            "SELECT {} FROM {} WHERE {} IS NOT NULL",
            select.join(", "),
            plan.target.sql(),
            quote_pg(column)
        ))
        .await
        .context(|| format!("fallback: read the values of {}.{column}", plan.target))?;
    // The relation as a window would describe it; every column but the key and this one is
    // left as SQL Server has it (a row PostgreSQL has and SQL Server not yet gets it from the
    // window that inserts it).
    let relation = super::apply::relation_of(plan);
    let mut changes = TableChanges::default();
    for m in rows {
        let tokio_postgres::SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        let text = |i: usize| r.get(i).map_or(Cell::Null, |v| Cell::Text(v.to_string()));
        let cells: Vec<Cell> = plan
            .columns
            .iter()
            .map(|c| match keys.iter().position(|k| *k == c.target) {
                Some(i) => text(i),
                None if c.target == column => text(keys.len()),
                None => Cell::Unchanged,
            })
            .collect();
        let key: KeyText = (0..keys.len())
            .map(|i| r.get(i).map(str::to_string))
            .collect();
        changes.set(key, End::Row(cells));
    }
    if changes.ends.is_empty() {
        return Ok(());
    }
    let mut w = Window::default();
    w.relations.insert(relation.oid, relation);
    w.tables.insert(0, changes);
    // No end LSN: the progress is the windows'.
    super::apply::apply(&mut s.tds, &w, &s.plans, "").await?;
    Ok(())
}
