//! A window applied to SQL Server, set-based, in one transaction with its position.
//!
//! Each table's changes become set-based statements ([`super::statements`]). The window's end
//! LSN is written to `[replicator].[fallback_progress]` in the same transaction: a crash before
//! the commit applies nothing, after it the next reader skips what the progress holds. Tables
//! are written parents first and deleted from children first, so SQL Server's per-statement
//! foreign key checks pass.
//!
//! Contract: nothing is written row by row; a table whose values SQL Server cannot hold is kept
//! aside before anything is written ([`super::parked`]), naming the key and the column, and so
//! are its children's rows that refer to what it keeps ([`super::blocked`]).

use super::blocked;
use super::decode::{PgLsn, RelColumn, Relation};
use super::net::{End, TableChanges, Window};
use super::parked::{self, Kept};
use super::statements::{table_sql, Statement};
use crate::convert::TablePlan;
use crate::error::{Error, ErrorKind};
use crate::model::tsql_literal;
use crate::source::{self, Tds};
use std::borrow::Cow;
use std::collections::HashMap;

/// The progress table on SQL Server.
pub const PROGRESS: &str = "[replicator].[fallback_progress]";

/// Creates the progress table and its row for `slot` when missing (idempotent); returns the
/// LSN SQL Server holds everything up to, if any.
pub async fn progress(tds: &mut Tds, slot: &str) -> Result<Option<PgLsn>, Error> {
    let lit = tsql_literal(slot);
    source::execute(
        tds,
        &format!(
            "IF SCHEMA_ID(N'replicator') IS NULL EXEC(N'CREATE SCHEMA [replicator]'); \
             IF OBJECT_ID(N'replicator.fallback_progress') IS NULL \
               CREATE TABLE {PROGRESS} (slot nvarchar(128) NOT NULL PRIMARY KEY, lsn bigint NOT NULL, \
                 applied_at datetime2(3) NOT NULL); \
             {}; \
             IF NOT EXISTS (SELECT 1 FROM {PROGRESS} WHERE slot = {lit}) \
               INSERT INTO {PROGRESS} (slot, lsn, applied_at) VALUES ({lit}, 0, SYSUTCDATETIME())",
            parked::CREATE
        ),
        "fallback: create the progress table on SQL Server",
    )
    .await?;
    let rows = source::query_rows(
        tds,
        &format!("SELECT CAST(lsn AS bigint) FROM {PROGRESS} WHERE slot = {lit}"),
        "fallback: read the progress on SQL Server",
    )
    .await?;
    let lsn = rows
        .first()
        .and_then(|r| r.get::<i64, _>(0))
        .filter(|&v| v > 0)
        .map(|v| PgLsn(v as u64));
    Ok(lsn)
}

/// What one window wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows written (inserted or updated).
    pub rows: usize,
    /// Rows deleted.
    pub deleted: usize,
    /// Tables this window stopped or kept stopped (their changes kept aside on SQL Server):
    /// source `schema.table`, why (the key and the column), and what to do.
    pub stopped: Vec<(String, String, Option<String>)>,
    /// Stopped tables this window wrote at last.
    pub resumed: Vec<String>,
}

impl Applied {
    /// Adds what a later part of the same SQL Server transaction wrote: a table it stopped or
    /// resumed ends so.
    pub fn then(&mut self, later: Applied) {
        self.rows += later.rows;
        self.deleted += later.deleted;
        for t in later.resumed {
            self.stopped.retain(|(s, _, _)| *s != t);
            if !self.resumed.contains(&t) {
                self.resumed.push(t);
            }
        }
        for st in later.stopped {
            self.resumed.retain(|r| *r != st.0);
            self.stopped.retain(|(s, _, _)| *s != st.0);
            self.stopped.push(st);
        }
    }
}

/// Forgets what SQL Server holds for `slot` (its progress and the changes its stopped tables
/// kept); the tables, then the `[replicator]` schema, go too once nothing else is in them.
/// Idempotent. `cutover --fallback` calls it before making its slot (a new slot's positions
/// start wherever the target's WAL is, a new cluster's from the beginning: an old progress
/// would read its windows past, and old kept changes would be applied again); `rollback` and
/// `fallback stop` when the fallback ends.
pub async fn forget(tds: &mut Tds, slot: &str) -> Result<(), Error> {
    let lit = tsql_literal(slot);
    let mut sql = String::new();
    for (object, table) in [
        ("replicator.fallback_progress", PROGRESS),
        ("replicator.fallback_parked", parked::PARKED),
    ] {
        sql.push_str(&format!(
            "IF OBJECT_ID(N'{object}') IS NOT NULL BEGIN \
               DELETE FROM {table} WHERE slot = {lit}; \
               IF NOT EXISTS (SELECT 1 FROM {table}) DROP TABLE {table} \
             END; "
        ));
    }
    sql.push_str(
        "IF SCHEMA_ID(N'replicator') IS NOT NULL AND NOT EXISTS \
           (SELECT 1 FROM sys.objects WHERE schema_id = SCHEMA_ID(N'replicator')) \
           EXEC(N'DROP SCHEMA [replicator]')",
    );
    source::execute(
        tds,
        &sql,
        &format!("fallback: forget slot {slot}'s progress and kept changes on SQL Server"),
    )
    .await
}

/// A window's statements, in order (without the transaction around them), and what it does.
#[derive(Debug, Default)]
pub struct WindowSql {
    /// The statements.
    pub statements: Vec<Statement>,
    /// What they write, and which tables they stop or resume.
    pub applied: Applied,
}

/// The statements of one window. `kept` holds the changes kept aside for stopped tables (by
/// source `schema.table`); with `park`, a table whose changes SQL Server cannot take is kept
/// aside (see [`super::parked`]) instead of refusing the window.
pub fn window_sql(
    w: &Window,
    plans: &[TablePlan],
    slot: &str,
    kept: &HashMap<String, Vec<Kept>>,
    park: bool,
    stop: &[(String, Error)],
) -> Result<WindowSql, Error> {
    let mut out = WindowSql::default();
    let mut writes: Vec<(usize, Vec<Statement>)> = Vec::new();
    let mut deletes: Vec<(usize, Vec<Statement>)> = Vec::new();
    let mut keeps: Vec<Statement> = Vec::new();
    let mut entries = entries(w, plans, kept, park, stop)?;
    if park {
        stop_blocked(&mut entries, kept, plans);
    }
    for e in entries {
        match e.outcome {
            Ok((mut w_sql, d_sql)) => {
                for (_, end) in &e.changes.ends {
                    match end {
                        End::Row(_) => out.applied.rows += 1,
                        End::Deleted => out.applied.deleted += 1,
                    }
                }
                if kept.contains_key(&e.name) {
                    w_sql.push(parked::clear_sql(slot, &e.name).into());
                    out.applied.resumed.push(e.name);
                }
                if !w_sql.is_empty() {
                    writes.push((e.order, w_sql));
                }
                if !d_sql.is_empty() {
                    deletes.push((e.order, d_sql));
                }
            }
            // Still waiting, kept as it was.
            Err(_) if e.idle => {}
            Err((why, hint)) => {
                keeps.extend(
                    parked::keep_sql(slot, &e.name, &e.relation, &e.changes)
                        .into_iter()
                        .map(Statement::from),
                );
                out.applied.stopped.push((e.name, why, hint));
            }
        }
    }
    // Parents before children for writes; children before parents for deletes. Plans come in
    // discovery order; a table's foreign keys name its parents.
    let depth = |i: usize| fk_depth(plans, i, 0);
    writes.sort_by_key(|(i, _)| depth(*i));
    deletes.sort_by_key(|(i, _)| std::cmp::Reverse(depth(*i)));
    out.statements
        .extend(writes.into_iter().flat_map(|(_, s)| s));
    out.statements
        .extend(deletes.into_iter().flat_map(|(_, s)| s));
    out.statements.extend(keeps);
    if let Some(end) = w.end {
        out.statements.push(
            format!(
                "UPDATE {PROGRESS} SET lsn = {}, applied_at = SYSUTCDATETIME() WHERE slot = {}",
                end.0,
                tsql_literal(slot)
            )
            .into(),
        );
    }
    Ok(out)
}

/// Each table's outcome, written or stopped (why, what to do): the window's tables (with what
/// they kept merged in), then the stopped tables it does not change that SQL Server can take
/// now (the parent their rows waited for resumed), so they resume without a change of their own.
fn entries<'a>(
    w: &'a Window,
    plans: &'a [TablePlan],
    kept: &HashMap<String, Vec<Kept>>,
    park: bool,
    stop: &[(String, Error)],
) -> Result<Vec<Entry<'a>>, Error> {
    let mut entries = Vec::new();
    for (rel, changes) in &w.tables {
        let relation = w
            .relations
            .get(rel)
            .ok_or_else(|| Error::Fatal(format!("fallback: relation {rel} was not described")))?;
        let (order, plan) = plan_of(plans, relation)?;
        let name = plan.source.name.to_string();
        let changes = match kept.get(&name) {
            Some(k) => Cow::Owned(parked::merge(k, relation, changes)),
            None => Cow::Borrowed(changes),
        };
        let outcome = match stop.iter().find(|(t, _)| *t == name) {
            Some((_, e)) => Err((e.to_string(), e.hint())),
            None => match table_sql(plan, relation, &changes, &name) {
                Ok(sql) => Ok(sql),
                Err(e) if park && e.kind() == ErrorKind::Table => Err((e.to_string(), e.hint())),
                Err(e) => return Err(e),
            },
        };
        entries.push(Entry {
            order,
            plan,
            name,
            relation: Cow::Borrowed(relation),
            changes,
            outcome,
            idle: false,
        });
    }
    // Stopped tables this window does not change, tried again.
    for (name, k) in kept {
        if entries.iter().any(|e| e.name == *name) || stop.iter().any(|(t, _)| t == name) {
            continue;
        }
        let Some((order, plan)) = plans
            .iter()
            .enumerate()
            .find(|(_, p)| p.source.name.to_string() == *name)
        else {
            continue;
        };
        let relation = relation_of(plan);
        let changes = parked::merge(k, &relation, &TableChanges::default());
        if let Ok(sql) = table_sql(plan, &relation, &changes, name) {
            entries.push(Entry {
                order,
                plan,
                name: name.clone(),
                relation: Cow::Owned(relation),
                changes: Cow::Owned(changes),
                outcome: Ok(sql),
                idle: true,
            });
        }
    }
    Ok(entries)
}

/// Stops every table whose rows refer to rows a stopped table keeps aside (SQL Server's foreign
/// key would refuse the window; see [`blocked`]), until nothing more stops.
fn stop_blocked(entries: &mut [Entry], kept: &HashMap<String, Vec<Kept>>, plans: &[TablePlan]) {
    let mut kept_keys: blocked::KeptKeys = kept
        .iter()
        .filter(|(t, _)| !entries.iter().any(|e| e.name == **t))
        .map(|(t, k)| {
            let keys = k.iter().filter(|k| k.maybe_absent && k.row.is_some());
            (t.clone(), keys.map(|k| k.key.clone()).collect())
        })
        .collect();
    for e in entries.iter() {
        if e.outcome.is_err() {
            kept_keys.insert(e.name.clone(), blocked::maybe_absent(&e.changes));
        }
    }
    loop {
        let mut more = false;
        for e in entries.iter_mut() {
            if e.outcome.is_err() {
                continue;
            }
            if let Some(why) = blocked::reason(e.plan, &e.relation, &e.changes, plans, &kept_keys) {
                e.outcome = Err((
                    format!("fallback: {}: {why}", e.name),
                    Some("fix the stopped table's value on PostgreSQL; this table's changes are written once it resumes".into()),
                ));
                kept_keys.insert(e.name.clone(), blocked::maybe_absent(&e.changes));
                more = true;
            }
        }
        if !more {
            break;
        }
    }
}

/// Why a table stops, and what to do.
type Stop = (String, Option<String>);

/// One table's part of a window: its changes (kept ones merged in) and what becomes of them.
struct Entry<'a> {
    order: usize,
    plan: &'a TablePlan,
    /// Source `schema.table`.
    name: String,
    relation: Cow<'a, Relation>,
    changes: Cow<'a, TableChanges>,
    /// Its writes and deletes, or why it stops and what to do.
    outcome: Result<(Vec<Statement>, Vec<Statement>), Stop>,
    /// A stopped table the window does not change, tried again.
    idle: bool,
}

/// `e` from a statement that failed, with the key of the first row it names that SQL Server
/// does not have (read after the rollback, when the statement says how), else as it was.
async fn name_missing_key(tds: &mut Tds, s: &Statement, e: Error) -> Error {
    let Some((query, keys)) = &s.missing else {
        return e;
    };
    let (context, source) = match e {
        Error::Source { context, source } => (context, source),
        e => return e,
    };
    let found = source::query_rows(tds, query, "fallback: look for the row SQL Server lacks")
        .await
        .ok()
        .and_then(|rows| rows.into_iter().next())
        .and_then(|row| row.try_get::<i32, _>(0).ok().flatten())
        .and_then(|n| keys.get(usize::try_from(n).ok()?));
    let context = match found {
        Some(key) => format!("{context}: key ({key}) is not on SQL Server"),
        None => context,
    };
    Error::Source { context, source }
}

/// The relation of a table a window did not describe (a stopped one it does not change, a
/// backfill): the plan's columns, keyed as PostgreSQL keys them.
pub(super) fn relation_of(plan: &TablePlan) -> Relation {
    Relation {
        oid: 0,
        schema: plan.target.schema.clone(),
        name: plan.target.name.clone(),
        replica_identity: b'd',
        columns: plan
            .columns
            .iter()
            .map(|c| RelColumn {
                key: c.key,
                name: c.target.clone(),
                type_oid: 0,
                type_mod: -1,
            })
            .collect(),
    }
}

/// The migrated table a relation is, with its place among the plans.
fn plan_of<'a>(
    plans: &'a [TablePlan],
    relation: &super::decode::Relation,
) -> Result<(usize, &'a TablePlan), Error> {
    plans
        .iter()
        .enumerate()
        .find(|(_, p)| p.target.schema == relation.schema && p.target.name == relation.name)
        .ok_or_else(|| {
            Error::Fatal(format!(
                "fallback: table {}.{} changed on PostgreSQL but is not a migrated table",
                relation.schema, relation.name
            ))
        })
}

/// How many foreign key levels a table sits below its topmost migrated parent.
fn fk_depth(plans: &[TablePlan], i: usize, seen: usize) -> usize {
    if seen > plans.len() {
        return seen; // a cycle: stop counting
    }
    plans[i]
        .source
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            plans.iter().position(|p| {
                p.source
                    .name
                    .schema
                    .eq_ignore_ascii_case(&fk.references.schema)
                    && p.source.name.name.eq_ignore_ascii_case(&fk.references.name)
            })
        })
        .filter(|&p| p != i)
        .map(|p| 1 + fk_depth(plans, p, seen + 1))
        .max()
        .unwrap_or(0)
}

/// Applies one window in one SQL Server transaction, its end LSN with it. Idempotent per
/// window: an applied window's rows are written again with the same values. With a `slot`, a
/// table SQL Server cannot take stops alone (its changes kept aside, the others written); the
/// backfill (no slot) is refused whole instead.
pub async fn apply(
    tds: &mut Tds,
    w: &Window,
    plans: &[TablePlan],
    slot: &str,
) -> Result<Applied, Error> {
    apply_stopping(tds, w, plans, slot, &[]).await
}

/// [`apply`], with tables (source `schema.table`) known to be stopped, each with why (a column
/// added on PostgreSQL that cannot go back): their changes are kept aside.
pub async fn apply_stopping(
    tds: &mut Tds,
    w: &Window,
    plans: &[TablePlan],
    slot: &str,
    stop: &[(String, Error)],
) -> Result<Applied, Error> {
    begin(tds).await?;
    let applied = part(tds, w, plans, slot, stop).await?;
    commit(tds).await?;
    Ok(applied)
}

/// Begins the SQL Server transaction a window is applied in, passing the source's fence.
pub async fn begin(tds: &mut Tds) -> Result<(), Error> {
    // The source's fence lets this session write (not transactional: set before the transaction).
    source::execute(
        tds,
        &format!(
            "EXEC sp_set_session_context @key = N'{}', @value = 1",
            crate::model::FENCE_BYPASS_KEY
        ),
        "fallback: pass the source's fence",
    )
    .await?;
    source::execute(
        tds,
        "SET XACT_ABORT ON; BEGIN TRANSACTION",
        "fallback: begin",
    )
    .await
}

/// Commits what [`part`] wrote since [`begin`].
pub async fn commit(tds: &mut Tds) -> Result<(), Error> {
    source::execute(tds, "COMMIT", "fallback: commit a window").await
}

/// Rolls back what [`part`] wrote since [`begin`] (idempotent; a connection gone rolls back by
/// itself).
pub async fn rollback(tds: &mut Tds) {
    let _ = source::execute(tds, "IF @@TRANCOUNT > 0 ROLLBACK", "fallback: roll back").await;
}

/// Writes `w` (a window, or a part of a transaction too large for one) inside the transaction
/// [`begin`] opened; on error the transaction is rolled back. The stopped tables' kept changes
/// are read inside it, so a later part sees what an earlier one kept.
pub async fn part(
    tds: &mut Tds,
    w: &Window,
    plans: &[TablePlan],
    slot: &str,
    stop: &[(String, Error)],
) -> Result<Applied, Error> {
    let park = !slot.is_empty();
    let sql = async {
        let mut kept: HashMap<String, Vec<Kept>> = HashMap::new();
        if park {
            // Every stopped table's: those in the window are merged with its changes, the
            // others' keys block the rows of their children that refer to them ([`blocked`]).
            for table in parked::stopped(tds, slot).await? {
                let k = parked::load(tds, slot, &table).await?;
                kept.insert(table, k);
            }
        }
        window_sql(w, plans, slot, &kept, park, stop)
    }
    .await;
    let sql = match sql {
        Ok(sql) => sql,
        Err(e) => {
            rollback(tds).await;
            return Err(e);
        }
    };
    for s in &sql.statements {
        if let Err(e) = source::execute(tds, &s.sql, "fallback: apply a window").await {
            rollback(tds).await;
            return Err(name_missing_key(tds, s, e).await);
        }
    }
    Ok(sql.applied)
}

#[cfg(test)]
mod tests {
    use super::Applied;

    #[test]
    fn parts_of_one_transaction_add_up_and_a_table_ends_as_the_last_part_left_it() {
        let stop = |t: &str| (t.to_string(), format!("{t} cannot"), None);
        let mut a = Applied {
            rows: 3,
            deleted: 1,
            stopped: vec![stop("dbo.a"), stop("dbo.b")],
            resumed: vec!["dbo.c".into()],
        };
        a.then(Applied {
            rows: 2,
            deleted: 0,
            stopped: vec![stop("dbo.c"), (String::from("dbo.b"), "again".into(), None)],
            resumed: vec!["dbo.a".into()],
        });
        assert_eq!((a.rows, a.deleted), (5, 1));
        assert_eq!(
            a.stopped,
            [
                stop("dbo.c"),
                (String::from("dbo.b"), String::from("again"), None)
            ]
        );
        assert_eq!(a.resumed, ["dbo.a"]);
    }
}
