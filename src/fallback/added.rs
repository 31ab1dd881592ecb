//! A column added on PostgreSQL during the fallback: a nullable one is added on SQL Server (a
//! type whose default mapping is the PostgreSQL type again) and backfilled with the values
//! PostgreSQL holds now, before the window that first carries it is applied; anything else
//! (NOT NULL, a type without a counterpart) stops the fallback naming the table and column.
//!
//! Why the backfill: `ADD COLUMN ... DEFAULT` fills existing rows without a row change in the
//! WAL, so the slot never carries those values. Values read now may be newer than the window
//! being applied; every later change of those rows is still in the slot, so SQL Server ends
//! where PostgreSQL is once it drained.

use super::decode::{Cell, Relation};
use super::net::{End, KeyText, TableChanges, Window};
use super::stream::Session;
use crate::daemon::Shared;
use crate::error::{Context, Error};
use crate::model::{quote_pg, quote_tsql};

/// Adds and backfills the columns the window's relations have and SQL Server has not; whether
/// any was.
pub async fn columns(shared: &Shared, s: &mut Session, w: &Window) -> Result<bool, Error> {
    let mut added = Vec::new();
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
            let name = plan.source.name.to_string();
            let row = s
                .pg
                .query_one(
                    "SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a \
                     WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped",
                    &[&plan.target.sql(), &col.name],
                )
                .await
                .context(|| format!("fallback: read column {} of {}", col.name, plan.target))?;
            let (ty, not_null): (String, bool) = (row.get(0), row.get(1));
            let stop = |why: String| {
                Error::table(
                    &name,
                    format!("fallback: column {} was added on PostgreSQL: {why}", col.name),
                    Some("drop it on PostgreSQL (its values cannot go back), or stop the fallback (replicator fallback stop)"),
                )
            };
            if not_null {
                return Err(stop(
                    "it is NOT NULL; only a nullable added column is carried".into(),
                ));
            }
            let sql_type = super::inverse::sql_server_type(&ty)
                .ok_or_else(|| stop(format!("its type {ty} has no SQL Server counterpart here")))?;
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
                Some(&name),
                format!(
                    "column {} ({ty}) added on SQL Server as {sql_type}",
                    col.name
                ),
            )?;
            added.push((rel.clone(), col.name.clone()));
        }
    }
    if added.is_empty() {
        return Ok(false);
    }
    s.replan(shared).await?;
    for (rel, column) in added {
        backfill(s, &rel, &column).await?;
    }
    Ok(true)
}

/// The added column's values PostgreSQL holds now, written to SQL Server's rows by key.
async fn backfill(s: &mut Session, rel: &Relation, column: &str) -> Result<(), Error> {
    let keys: Vec<&str> = rel
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| c.name.as_str())
        .collect();
    let select: Vec<String> = keys
        .iter()
        .chain(std::iter::once(&column))
        .map(|c| format!("{}::text", quote_pg(c)))
        .collect();
    let table = format!("{}.{}", quote_pg(&rel.schema), quote_pg(&rel.name));
    let rows =
        s.pg.simple_query(&format!(
            "SELECT {} FROM {table} WHERE {} IS NOT NULL",
            select.join(", "),
            quote_pg(column)
        ))
        .await
        .context(|| format!("fallback: read the values of {table}.{column}"))?;
    let mut changes = TableChanges::default();
    for m in rows {
        let tokio_postgres::SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        let key: KeyText = (0..keys.len())
            .map(|i| r.get(i).map(str::to_string))
            .collect();
        let value = r.get(keys.len()).map(str::to_string);
        let mut ki = 0;
        let row: Vec<Cell> = rel
            .columns
            .iter()
            .map(|c| {
                if c.key {
                    ki += 1;
                    key[ki - 1].clone().map_or(Cell::Null, Cell::Text)
                } else if c.name == column {
                    value.clone().map_or(Cell::Null, Cell::Text)
                } else {
                    Cell::Unchanged
                }
            })
            .collect();
        changes.set(key, End::Row(row));
    }
    if changes.ends.is_empty() {
        return Ok(());
    }
    let mut w = Window::default();
    w.relations.insert(rel.oid, rel.clone());
    w.tables.insert(rel.oid, changes);
    // No end LSN: the progress is the window's to set.
    super::apply::apply(&mut s.tds, &w, &s.plans, "").await?;
    Ok(())
}
