//! A window applied to SQL Server, set-based, in one transaction with its position.
//!
//! Per table and per 1,000 rows: the rows as a table value constructor (`(VALUES (...), ...)
//! AS s (c1, ...)`, every value cast to its column's type, so the derived table has exactly the
//! table's types), then, by what the window says SQL Server has for each key (its first change
//! there: an insert or an update): one `INSERT ... SELECT` for the new keys, one `UPDATE ...
//! FROM` joined to it for the updated ones, both (`UPDATE`, then `INSERT ... WHERE NOT EXISTS`)
//! where it is not known (changes a stopped table kept, a backfill); under `IDENTITY_INSERT`
//! when the table has an identity; and one `DELETE ... FROM` joined to the deleted keys (a key
//! inserted and deleted inside the window is not sent). Rows whose large value PostgreSQL did
//! not send update only what was sent. The window's end LSN is written to
//! `[replicator].[fallback_progress]` in the same transaction: a crash before the commit
//! applies nothing, after it the next reader skips what the progress holds. Tables are written
//! parents first and deleted from children first, so SQL Server's per-statement foreign key
//! checks pass.
//!
//! Contract: nothing is written row by row; a table whose values SQL Server cannot hold is kept
//! aside before anything is written ([`super::parked`]), naming the key and the column.

use super::blocked;
use super::decode::{Cell, PgLsn};
use super::inverse;
use super::net::{Before, End, KeyText, TableChanges, Window};
use super::parked::{self, Kept};
use crate::convert::{ColumnPlan, TablePlan};
use crate::error::{Error, ErrorKind};
use crate::model::{quote_tsql, tsql_literal, SourceType};
use crate::source::{self, Tds};
use std::collections::HashMap;

/// Rows per statement (a table value constructor's rows, as T-SQL limits `INSERT ... VALUES`).
const ROWS_PER_STATEMENT: usize = 1000;

/// The progress table on SQL Server.
pub const PROGRESS: &str = "[replicator].[fallback_progress]";

/// A table's columns as the fallback writes them: (relation column index, plan column, source
/// type), in the relation's order.
struct Target<'a> {
    plan: &'a TablePlan,
    columns: Vec<(usize, &'a ColumnPlan, &'a SourceType)>,
    key: Vec<usize>,
}

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

/// A window's statements, in order (without the transaction around them), and what it does.
#[derive(Debug, Default)]
pub struct WindowSql {
    /// The statements.
    pub statements: Vec<String>,
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
    let mut writes: Vec<(usize, Vec<String>)> = Vec::new();
    let mut deletes: Vec<(usize, Vec<String>)> = Vec::new();
    let mut keeps: Vec<String> = Vec::new();
    // Each table's outcome first: written, or stopped (why, what to do).
    let mut entries = Vec::new();
    for (rel, changes) in &w.tables {
        let relation = w
            .relations
            .get(rel)
            .ok_or_else(|| Error::Fatal(format!("fallback: relation {rel} was not described")))?;
        let (order, plan) = plan_of(plans, relation)?;
        let name = plan.source.name.to_string();
        let changes = match kept.get(&name) {
            Some(k) => std::borrow::Cow::Owned(parked::merge(k, relation, changes)),
            None => std::borrow::Cow::Borrowed(changes),
        };
        let outcome = match stop.iter().find(|(t, _)| *t == name) {
            Some((_, e)) => Err((e.to_string(), e.hint())),
            None => match table_sql(plan, relation, &changes, &name) {
                Ok(sql) => Ok(sql),
                Err(e) if park && e.kind() == ErrorKind::Table => Err((e.to_string(), e.hint())),
                Err(e) => return Err(e),
            },
        };
        entries.push((order, plan, name, relation, changes, outcome));
    }
    // A table whose rows refer to rows a stopped table keeps aside stops too (SQL Server's
    // foreign key would refuse the window), until nothing more stops.
    let mut kept_keys: blocked::KeptKeys = kept
        .iter()
        .filter(|(t, _)| !entries.iter().any(|e| e.2 == **t))
        .map(|(t, k)| {
            let keys = k.iter().filter(|k| k.maybe_absent && k.row.is_some());
            (t.clone(), keys.map(|k| k.key.clone()).collect())
        })
        .collect();
    for (_, _, name, _, changes, outcome) in &entries {
        if outcome.is_err() {
            kept_keys.insert(name.clone(), blocked::maybe_absent(changes));
        }
    }
    loop {
        let mut more = false;
        for (_, plan, name, relation, changes, outcome) in &mut entries {
            if outcome.is_err() || !park {
                continue;
            }
            if let Some(why) = blocked::reason(plan, relation, changes, plans, &kept_keys) {
                *outcome = Err((
                    format!("fallback: {name}: {why}"),
                    Some("fix the stopped table's value on PostgreSQL; this table's changes are written with its next change after that".into()),
                ));
                kept_keys.insert(name.clone(), blocked::maybe_absent(changes));
                more = true;
            }
        }
        if !more {
            break;
        }
    }
    for (order, _, name, relation, changes, outcome) in entries {
        match outcome {
            Ok((mut w_sql, d_sql)) => {
                for (_, end) in &changes.ends {
                    match end {
                        End::Row(_) => out.applied.rows += 1,
                        End::Deleted => out.applied.deleted += 1,
                    }
                }
                if kept.contains_key(&name) {
                    w_sql.push(parked::clear_sql(slot, &name));
                    out.applied.resumed.push(name);
                }
                if !w_sql.is_empty() {
                    writes.push((order, w_sql));
                }
                if !d_sql.is_empty() {
                    deletes.push((order, d_sql));
                }
            }
            Err((why, hint)) => {
                keeps.extend(parked::keep_sql(slot, &name, relation, &changes));
                out.applied.stopped.push((name, why, hint));
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
        out.statements.push(format!(
            "UPDATE {PROGRESS} SET lsn = {}, applied_at = SYSUTCDATETIME() WHERE slot = {}",
            end.0,
            tsql_literal(slot)
        ));
    }
    Ok(out)
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

/// One table's writes and deletes; `Err` (naming the key and column) when SQL Server cannot
/// take them.
fn table_sql(
    plan: &TablePlan,
    relation: &super::decode::Relation,
    changes: &TableChanges,
    name: &str,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let target = target_of(plan, relation)?;
    // Rows by what SQL Server has for their key: none (insert), one (update), not known (both).
    let (mut new, mut updated, mut full) = (Vec::new(), Vec::new(), Vec::new());
    let mut partial: Vec<(Vec<bool>, Vec<String>)> = Vec::new();
    let mut gone: Vec<Vec<String>> = Vec::new();
    for (i, (key, end)) in changes.ends.iter().enumerate() {
        let before = changes.before.get(i).copied().unwrap_or(Before::Unknown);
        match end {
            // Inserted and deleted inside the window: SQL Server never had it.
            End::Deleted if before == Before::Absent => {}
            End::Deleted => gone.push(key_values(&target, key, name)?),
            End::Row(row) => {
                let sent: Vec<bool> = row.iter().map(|c| *c != Cell::Unchanged).collect();
                let values = row_values(&target, row, key, name)?;
                if !sent.iter().all(|s| *s) {
                    partial.push((sent, values));
                } else {
                    match before {
                        Before::Absent => new.push(values),
                        Before::Present => updated.push(values),
                        Before::Unknown => full.push(values),
                    }
                }
            }
        }
    }
    let mut writes = Vec::new();
    if !full.is_empty() {
        writes.extend(upsert_sql(&target, &full));
    }
    if !updated.is_empty() {
        let all: Vec<usize> = (0..target.columns.len()).collect();
        // Each of them is on SQL Server if it mirrors PostgreSQL; one that is not fails the
        // window loudly (its update would otherwise vanish).
        let missing = tsql_literal(&format!(
            "fallback: {name}: a row PostgreSQL updated is not on SQL Server, so SQL Server no longer mirrors PostgreSQL for this table (a write past the fence, or a change by hand); the fallback waits at this window: put the row back on SQL Server, or end the fallback (replicator fallback stop)"
        ));
        for chunk in updated.chunks(ROWS_PER_STATEMENT) {
            if let Some(sql) = update_sql(&target, &all, &derived(&target, &all, chunk)) {
                writes.push(format!(
                    "{sql}; IF @@ROWCOUNT <> {} THROW 50001, {missing}, 1",
                    chunk.len()
                ));
            }
        }
    }
    if !new.is_empty() {
        writes.extend(insert_sql(&target, &new));
    }
    for (sent, values) in &partial {
        writes.extend(partial_sql(&target, sent, values));
    }
    let deletes = if gone.is_empty() {
        Vec::new()
    } else {
        delete_sql(&target, &gone)
    };
    Ok((writes, deletes))
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

fn target_of<'a>(
    plan: &'a TablePlan,
    relation: &super::decode::Relation,
) -> Result<Target<'a>, Error> {
    let name = plan.source.name.to_string();
    let mut columns = Vec::new();
    for (i, rc) in relation.columns.iter().enumerate() {
        let col = plan.columns.iter().find(|c| c.target == rc.name).ok_or_else(|| {
            Error::table(
                &name,
                format!(
                    "fallback: column {} of {} is on PostgreSQL only; SQL Server cannot take its values",
                    rc.name, plan.target
                ),
                Some("drop the column on PostgreSQL, or stop the fallback (replicator fallback stop)"),
            )
        })?;
        let source = plan
            .source
            .columns
            .iter()
            .find(|s| s.name == col.source)
            .ok_or_else(|| {
                Error::table(
                    &name,
                    format!("fallback: no source column {}", col.source),
                    None,
                )
            })?;
        if source.computed.is_some()
            || matches!(source.source_type.name.as_str(), "timestamp" | "rowversion")
        {
            continue; // SQL Server computes it
        }
        inverse::invertible(col, &source.source_type)
            .map_err(|why| Error::table(&name, format!("fallback: {why}"), None))?;
        columns.push((i, col, &source.source_type));
    }
    let key: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, (_, c, _))| c.key)
        .map(|(j, _)| j)
        .collect();
    if key.is_empty() {
        return Err(Error::table(&name, "fallback: the table has no key", None));
    }
    Ok(Target { plan, columns, key })
}

fn describe_key(key: &KeyText) -> String {
    key.iter()
        .map(|k| k.as_deref().unwrap_or("NULL"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The literals of a row's written columns.
fn row_values(t: &Target, row: &[Cell], key: &KeyText, name: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(t.columns.len());
    for (i, col, ty) in &t.columns {
        let text = match row.get(*i) {
            Some(Cell::Text(s)) => Some(s.as_str()),
            _ => None,
        };
        out.push(inverse::literal(col, ty, text).map_err(|why| {
            Error::table(
                name,
                format!(
                    "fallback: key ({}), column {}: SQL Server cannot hold the value PostgreSQL has: {why}",
                    describe_key(key),
                    col.source
                ),
                Some("change the value on PostgreSQL, or stop the fallback (replicator fallback stop)"),
            )
        })?);
    }
    Ok(out)
}

/// The literals of a key.
fn key_values(t: &Target, key: &KeyText, name: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for (j, k) in t.key.iter().zip(key) {
        let (_, col, ty) = &t.columns[*j];
        out.push(inverse::literal(col, ty, k.as_deref()).map_err(|why| {
            Error::table(
                name,
                format!("fallback: key ({}): {why}", describe_key(key)),
                None,
            )
        })?);
    }
    Ok(out)
}

/// The type a value is cast to in the derived table: the column's, with the deprecated LOB
/// types as their `max` forms.
fn cast_type(ty: &SourceType) -> String {
    match ty.name.as_str() {
        "text" => "varchar(max)".into(),
        "ntext" => "nvarchar(max)".into(),
        "image" => "varbinary(max)".into(),
        _ => ty.declaration(),
    }
}

/// A literal cast to its column's type (a spatial constructor is typed already).
fn typed(literal: String, ty: &SourceType) -> String {
    if literal.starts_with("geography::") || literal.starts_with("geometry::") {
        literal
    } else {
        format!("CAST({literal} AS {})", cast_type(ty))
    }
}

/// `(VALUES (...), ...) AS s ([c1], ...)` of some rows over the columns `cols`.
fn derived(t: &Target, cols: &[usize], rows: &[Vec<String>]) -> String {
    let body: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = cols
                .iter()
                .zip(r)
                .map(|(&j, v)| typed(v.clone(), t.columns[j].2))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!("(VALUES {}) AS s ({})", body.join(", "), names(t, cols, ""))
}

fn names(t: &Target, cols: &[usize], prefix: &str) -> String {
    cols.iter()
        .map(|&j| format!("{prefix}{}", quote_tsql(&t.columns[j].1.source)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_match(t: &Target, a: &str, b: &str) -> String {
    t.key
        .iter()
        .map(|&j| {
            let c = quote_tsql(&t.columns[j].1.source);
            format!("{a}.{c} = {b}.{c}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn update_sql(t: &Target, cols: &[usize], from: &str) -> Option<String> {
    let sets: Vec<String> = cols
        .iter()
        .filter(|j| !t.key.contains(j))
        .map(|&j| {
            let c = quote_tsql(&t.columns[j].1.source);
            format!("{c} = s.{c}")
        })
        .collect();
    (!sets.is_empty()).then(|| {
        format!(
            "UPDATE x SET {} FROM {} AS x INNER JOIN {from} ON {}",
            sets.join(", "),
            t.plan.source.name.tsql(),
            key_match(t, "x", "s")
        )
    })
}

/// Rows SQL Server has no row for (their key's first change in the window was an insert): one
/// `INSERT` per 1,000 (a key SQL Server has after all fails the window loudly).
fn insert_sql(t: &Target, rows: &[Vec<String>]) -> Vec<String> {
    let all: Vec<usize> = (0..t.columns.len()).collect();
    let table = t.plan.source.name.tsql();
    let identity = t.columns.iter().any(|(_, c, _)| c.identity);
    let mut out = Vec::new();
    if identity {
        out.push(format!("SET IDENTITY_INSERT {table} ON"));
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        out.push(format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {}",
            names(t, &all, ""),
            names(t, &all, "s."),
            derived(t, &all, chunk)
        ));
    }
    if identity {
        out.push(format!("SET IDENTITY_INSERT {table} OFF"));
    }
    out
}

fn upsert_sql(t: &Target, rows: &[Vec<String>]) -> Vec<String> {
    let all: Vec<usize> = (0..t.columns.len()).collect();
    let table = t.plan.source.name.tsql();
    let identity = t.columns.iter().any(|(_, c, _)| c.identity);
    let mut out = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let from = derived(t, &all, chunk);
        out.extend(update_sql(t, &all, &from));
        if identity {
            out.push(format!("SET IDENTITY_INSERT {table} ON"));
        }
        out.push(format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {from} WHERE NOT EXISTS \
             (SELECT 1 FROM {table} AS x WHERE {})",
            names(t, &all, ""),
            names(t, &all, "s."),
            key_match(t, "x", "s")
        ));
        if identity {
            out.push(format!("SET IDENTITY_INSERT {table} OFF"));
        }
    }
    out
}

/// A row whose large value was not sent: the sent columns updated (SQL Server keeps the rest).
fn partial_sql(t: &Target, sent: &[bool], values: &[String]) -> Vec<String> {
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&j| sent.get(t.columns[j].0).copied().unwrap_or(false))
        .collect();
    let row: Vec<String> = cols.iter().map(|&j| values[j].clone()).collect();
    update_sql(t, &cols, &derived(t, &cols, &[row]))
        .into_iter()
        .collect()
}

fn delete_sql(t: &Target, keys: &[Vec<String>]) -> Vec<String> {
    let table = t.plan.source.name.tsql();
    keys.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            format!(
                "DELETE x FROM {table} AS x INNER JOIN {} ON {}",
                derived(t, &t.key, chunk),
                key_match(t, "x", "s")
            )
        })
        .collect()
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
    let park = !slot.is_empty();
    let mut kept: HashMap<String, Vec<Kept>> = HashMap::new();
    if park {
        // Every stopped table's: those in the window are merged with its changes, the others'
        // keys block the rows of their children that refer to them ([`blocked`]).
        for table in parked::stopped(tds, slot).await? {
            let k = parked::load(tds, slot, &table).await?;
            kept.insert(table, k);
        }
    }
    let sql = window_sql(w, plans, slot, &kept, park, stop)?;
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
    .await?;
    for s in &sql.statements {
        if let Err(e) = source::execute(tds, s, "fallback: apply a window").await {
            let _ =
                source::execute(tds, "IF @@TRANCOUNT > 0 ROLLBACK", "fallback: roll back").await;
            return Err(e);
        }
    }
    source::execute(tds, "COMMIT", "fallback: commit a window").await?;
    Ok(sql.applied)
}
