//! A table the fallback cannot write stops alone: its changes are kept aside on SQL Server, in
//! `[replicator].[fallback_parked]`, written in the same transaction as the window and its
//! progress, while the other tables' changes go on. Each later window that changes the table
//! takes the kept changes, the new ones on top (per key, the last word wins), and writes them
//! all once SQL Server can hold them: the table resumes. A window that does not change a
//! stopped table tries its kept changes alone (a child whose rows waited for a stopped parent
//! resumes with it).
//!
//! Contract: a table is stopped exactly while it has kept changes (so a crash anywhere neither
//! loses them nor applies them twice: they commit with the window's progress); kept rows name
//! their columns, so a column dropped on PostgreSQL meanwhile is left out and one added keeps
//! SQL Server's value.

use super::decode::{Cell, Relation};
use super::net::{Before, End, KeyText, TableChanges};
use crate::error::Error;
use crate::model::tsql_literal;
use crate::source::{self, Tds};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// The table on SQL Server.
pub const PARKED: &str = "[replicator].[fallback_parked]";

/// Creates the table when missing (idempotent; the schema exists).
pub const CREATE: &str = "IF OBJECT_ID(N'replicator.fallback_parked') IS NULL \
    CREATE TABLE [replicator].[fallback_parked] (slot nvarchar(128) NOT NULL, tbl nvarchar(300) NOT NULL, \
      key_md5 binary(16) NOT NULL, change nvarchar(max) NOT NULL, PRIMARY KEY (slot, tbl, key_md5))";

/// One key's kept change: its row by column name, or its deletion (`row` = `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The key's text values.
    pub key: KeyText,
    /// The row's cells by column name; `None` for a deletion.
    pub row: Option<Vec<(String, Cell)>>,
    /// SQL Server may not have the key's row (its first change was an insert, or not known);
    /// false when it had it (kept changes written before this field: true).
    #[serde(default = "maybe")]
    pub maybe_absent: bool,
}

fn maybe() -> bool {
    true
}

/// The tables (source `schema.table`) with kept changes for `slot`: the stopped ones.
pub async fn stopped(tds: &mut Tds, slot: &str) -> Result<Vec<String>, Error> {
    let rows = source::query_rows(
        tds,
        &format!(
            "SELECT DISTINCT tbl FROM {PARKED} WHERE slot = {} ORDER BY tbl",
            tsql_literal(slot)
        ),
        "fallback: read the stopped tables",
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<&str, _>(0).map(str::to_string))
        .collect())
}

/// The kept changes of `table`.
pub async fn load(tds: &mut Tds, slot: &str, table: &str) -> Result<Vec<Kept>, Error> {
    let rows = source::query_rows(
        tds,
        &format!(
            "SELECT CAST(change AS nvarchar(max)) FROM {PARKED} WHERE slot = {} AND tbl = {}",
            tsql_literal(slot),
            tsql_literal(table)
        ),
        "fallback: read a stopped table's changes",
    )
    .await?;
    rows.iter()
        .map(|r| {
            let text = r.get::<&str, _>(0).unwrap_or_default();
            serde_json::from_str(text).map_err(|e| {
                Error::Fatal(format!(
                    "fallback: a kept change of {table} on SQL Server is unreadable ({e}); \
                     was {PARKED} edited?"
                ))
            })
        })
        .collect()
}

/// The kept changes as the window's relation lays rows out, then `later` on top.
pub fn merge(kept: &[Kept], relation: &Relation, later: &TableChanges) -> TableChanges {
    let mut t = TableChanges::default();
    for k in kept {
        let end = match &k.row {
            None => End::Deleted,
            Some(cells) => End::Row(
                relation
                    .columns
                    .iter()
                    .map(|c| {
                        cells
                            .iter()
                            .find(|(n, _)| *n == c.name)
                            .map_or(Cell::Unchanged, |(_, v)| v.clone())
                    })
                    .collect(),
            ),
        };
        let before = match k.maybe_absent {
            true => Before::Unknown,
            false => Before::Present,
        };
        t.set_before(k.key.clone(), end, before);
    }
    t.then(later);
    t
}

/// The statements that keep `changes` of `table` aside in place of what was kept before.
pub fn keep_sql(
    slot: &str,
    table: &str,
    relation: &Relation,
    changes: &TableChanges,
) -> Vec<String> {
    let mut out = vec![clear_sql(slot, table)];
    let rows: Vec<String> = changes
        .ends
        .iter()
        .enumerate()
        .map(|(i, (key, end))| {
            let kept = Kept {
                maybe_absent: changes.before.get(i) != Some(&Before::Present),
                key: key.clone(),
                row: match end {
                    End::Deleted => None,
                    End::Row(cells) => Some(
                        relation
                            .columns
                            .iter()
                            .zip(cells)
                            .map(|(c, v)| (c.name.clone(), v.clone()))
                            .collect(),
                    ),
                },
            };
            let json = serde_json::to_string(&kept).unwrap_or_default();
            let md5 = Md5::digest(serde_json::to_string(key).unwrap_or_default().as_bytes());
            let hex: String = md5.iter().map(|b| format!("{b:02X}")).collect();
            format!(
                "({}, {}, 0x{hex}, {})",
                tsql_literal(slot),
                tsql_literal(table),
                tsql_literal(&json)
            )
        })
        .collect();
    for chunk in rows.chunks(1000) {
        out.push(format!(
            "INSERT INTO {PARKED} (slot, tbl, key_md5, change) VALUES {}",
            chunk.join(", ")
        ));
    }
    out
}

/// The statement that forgets `table`'s kept changes (it resumed).
pub fn clear_sql(slot: &str, table: &str) -> String {
    format!(
        "DELETE FROM {PARKED} WHERE slot = {} AND tbl = {}",
        tsql_literal(slot),
        tsql_literal(table)
    )
}
