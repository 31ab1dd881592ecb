//! The fallback's loop, run by `replicator run` after a `cutover --fallback`: read whole
//! transactions from the slot, apply them to SQL Server as one window, advance the slot, record
//! the lag; until the daemon stops or the fallback ends (`fallback stop`, `rollback`).
//!
//! Contract: the slot advances only past what SQL Server committed with its progress; a crash
//! anywhere reads the uncommitted part again and skips the committed part by that progress. A
//! table SQL Server cannot take stops alone (its changes kept on SQL Server with the window,
//! [`super::parked`]); status shows the table, the key and the reason until a later change on
//! PostgreSQL makes them fit. A window refused whole (a truncate, a connection lost, a foreign
//! key into a stopped table's rows) is retried, never skipped.

use super::decode::PgLsn;
use super::delta::Changed;
use super::net::Window;
use super::{apply, slot};
use crate::daemon::{connect_source, connect_target, Shared};
use crate::error::{Context, Error, ErrorKind};
use crate::state::{now_ms, ErrorRecord, FallbackRecord, StoppedTable};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How long a refused window waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Runs the fallback until the daemon stops. Returns an error only when it cannot go on at all
/// (no record, no slot).
pub async fn run(shared: &Arc<Shared>) -> Result<(), Error> {
    let mut rec = shared
        .store
        .fallback()?
        .filter(|r| r.active)
        .ok_or_else(|| {
            Error::Fatal("no active fallback: every table is cut over, nothing to do".into())
        })?;
    tracing::info!(slot = %rec.slot, "fallback: postgresql's changes flow back to sql server");
    shared.lifecycle.ready.send_replace(true);
    let mut window_changes = shared.config.fallback.window_changes;
    let mut session: Option<Session> = None;
    while !shared.stopping() {
        let result = match session.as_mut() {
            Some(s) => one_window(shared, s, &mut rec, window_changes, None).await,
            None => match Session::open_for(shared, &mut rec).await {
                Ok(s) => {
                    session = Some(s);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(true) => window_changes = shared.config.fallback.window_changes,
            Ok(false) => {
                if shared.sleep_or_stop(shared.config.poll_interval).await {
                    break;
                }
            }
            Err(e) => {
                session = None;
                tracing::error!(error = %e, hint = e.hint().unwrap_or_default(), "fallback: window not applied");
                rec.last_error = Some(ErrorRecord {
                    message: e.to_string(),
                    hint: e.hint(),
                    at_ms: now_ms(),
                });
                rec.updated_ms = now_ms();
                shared.store.set_fallback(&rec)?;
                if e.kind() == ErrorKind::Fatal {
                    return Err(e);
                }
                // A refused window grows: a later change of the same row may make its end one
                // SQL Server holds.
                if e.kind() == ErrorKind::Table {
                    window_changes = window_changes.saturating_mul(2).min(1_000_000);
                }
                if shared.sleep_or_stop(RETRY).await {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The connections a run of windows uses, and the tables' plans.
pub struct Session {
    /// The target.
    pub pg: tokio_postgres::Client,
    /// The target again, reading the slot (a stream of changes, during which its connection
    /// answers nothing else).
    pub reader: tokio_postgres::Client,
    /// The source.
    pub tds: crate::source::Tds,
    /// The migrated tables, as the source's catalog says now.
    pub plans: Vec<crate::convert::TablePlan>,
}

impl Session {
    /// Plans the tables again (after a column was added).
    pub async fn replan(&mut self, shared: &Shared) -> Result<(), Error> {
        self.plans = plans(shared, &mut self.tds).await?;
        Ok(())
    }

    /// Connects to both and plans the tables.
    pub async fn open(shared: &Shared) -> Result<Session, Error> {
        let pg = connect_target(shared).await?;
        // Values read as text (a backfill's) are rendered as decoding renders them.
        pg.batch_execute(slot::RENDERING)
            .await
            .context(|| "fallback: set how the target renders values".into())?;
        let reader = connect_target(shared).await?;
        let mut tds = connect_source(shared).await?;
        let plans = plans(shared, &mut tds).await?;
        Ok(Session {
            pg,
            reader,
            tds,
            plans,
        })
    }
}

/// Makes the record's stopped tables those SQL Server keeps changes for (a crash between a
/// window's commit and its record leaves them apart).
async fn reconcile_stopped(
    shared: &Shared,
    s: &mut Session,
    rec: &mut FallbackRecord,
) -> Result<(), Error> {
    apply::progress(&mut s.tds, &rec.slot).await?;
    let kept = super::parked::stopped(&mut s.tds, &rec.slot).await?;
    let before = rec.stopped_tables.len();
    rec.stopped_tables.retain(|t| kept.contains(&t.table));
    let mut changed = rec.stopped_tables.len() != before;
    for t in kept {
        if !rec.stopped_tables.iter().any(|r| r.table == t) {
            rec.stopped_tables.push(StoppedTable {
                table: t,
                message: "stopped: SQL Server keeps its changes aside; the next change of the table says why".into(),
                hint: None,
                since_ms: now_ms(),
            });
            changed = true;
        }
    }
    if changed {
        shared.store.set_fallback(rec)?;
    }
    Ok(())
}

impl Session {
    /// Connects, plans, and brings the record's stopped tables in line with SQL Server.
    async fn open_for(shared: &Shared, rec: &mut FallbackRecord) -> Result<Session, Error> {
        let mut s = Session::open(shared).await?;
        reconcile_stopped(shared, &mut s, rec).await?;
        Ok(s)
    }
}

/// Applies windows until the slot holds nothing more (PostgreSQL's writers must be stopped for
/// this to end) or `deadline` passes (an error); the keys they wrote go into `changed`.
pub async fn drain(
    shared: &Arc<Shared>,
    s: &mut Session,
    rec: &mut FallbackRecord,
    deadline: std::time::Instant,
    changed: &mut Changed,
) -> Result<(), Error> {
    while one_window(
        shared,
        s,
        rec,
        shared.config.fallback.window_changes,
        Some(&mut *changed),
    )
    .await?
    {
        if std::time::Instant::now() > deadline {
            return Err(Error::Fatal(
                "fallback: the slot did not drain before the timeout".into(),
            ));
        }
    }
    Ok(())
}

/// Applies windows while PostgreSQL's writers go on, until one finds the slot empty or
/// `deadline` passes (not an error: what is left waits for the next window).
pub async fn catch_up(
    shared: &Arc<Shared>,
    s: &mut Session,
    rec: &mut FallbackRecord,
    deadline: std::time::Instant,
) -> Result<(), Error> {
    while std::time::Instant::now() < deadline
        && one_window(shared, s, rec, shared.config.fallback.window_changes, None).await?
    {}
    Ok(())
}

/// One window; `Ok(false)` when the slot had nothing. The keys it wrote go into `changed`.
async fn one_window(
    shared: &Arc<Shared>,
    s: &mut Session,
    rec: &mut FallbackRecord,
    window_changes: i32,
    mut changed: Option<&mut Changed>,
) -> Result<bool, Error> {
    let done = apply::progress(&mut s.tds, &rec.slot).await?;
    super::added::backfill_pending(shared, s, rec).await?;
    let (changes, upto) = slot::peek_stream(&s.reader, &rec.slot, window_changes).await?;
    let mut changes = std::pin::pin!(changes);
    let mut w = Window::after(done);
    let mut any = false;
    // A transaction larger than a window is applied in parts of that size inside one SQL
    // Server transaction (`open`), committed with the rest: memory holds one part at a time.
    let part_changes = shared.config.fallback.window_changes.max(1) as u64;
    let mut open: Option<(apply::Applied, Vec<(String, Error)>)> = None;
    let read = async {
        while let Some(c) = changes.next().await {
            any = true;
            w.add(c?.message)
                .map_err(|why| Error::table(&rec.slot, format!("fallback: {why}"), None))?;
            if w.open_changes() < part_changes || w.tables.is_empty() {
                continue;
            }
            if open.is_none() {
                let refused = added_columns(shared, s, rec, &w).await?;
                apply::begin(&mut s.tds).await?;
                tracing::info!(
                    part_changes,
                    "fallback: a transaction larger than a window is applied in parts, in one sql server transaction"
                );
                open = Some((apply::Applied::default(), refused));
            }
            let part = w.take_part();
            if let Some((applied, refused)) = open.as_mut() {
                applied.then(apply::part(&mut s.tds, &part, &s.plans, &rec.slot, refused).await?);
            }
            if let Some(c) = changed.as_deref_mut() {
                c.add(&part);
            }
            tracing::debug!(rows = part.changes, "fallback: part of a large transaction applied");
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = read {
        if open.is_some() {
            apply::rollback(&mut s.tds).await;
        }
        return Err(e);
    }
    if !any {
        // Nothing of the migrated tables up to `upto`: the slot need not keep that WAL.
        slot::advance(&s.pg, &rec.slot, upto).await?;
        record(shared, &s.pg, rec, done).await?;
        return Ok(false);
    }
    let Some(end) = w.end else {
        // Never so (the slot gives whole transactions), but nothing half is committed.
        if open.is_some() {
            apply::rollback(&mut s.tds).await;
        }
        return Ok(false);
    };
    let applied = match open {
        Some((mut applied, refused)) => {
            applied.then(apply::part(&mut s.tds, &w, &s.plans, &rec.slot, &refused).await?);
            apply::commit(&mut s.tds).await?;
            applied
        }
        None => {
            let refused = added_columns(shared, s, rec, &w).await?;
            apply::apply_stopping(&mut s.tds, &w, &s.plans, &rec.slot, &refused).await?
        }
    };
    if let Some(c) = changed {
        c.add(&w);
    }
    slot::advance(&s.pg, &rec.slot, end).await?;
    rec.rows_applied += (applied.rows + applied.deleted) as u64;
    rec.windows += 1;
    rec.last_error = None;
    note_stopped(rec, &applied);
    record(shared, &s.pg, rec, Some(end)).await?;
    tracing::debug!(
        rows = applied.rows,
        deleted = applied.deleted,
        transactions = w.transactions,
        "fallback: window applied"
    );
    Ok(true)
}

/// Adds on SQL Server the columns the window's relations have that it lacks (and backfills
/// them); returns the tables whose added columns cannot go back, each with why.
async fn added_columns(
    shared: &Arc<Shared>,
    s: &mut Session,
    rec: &mut FallbackRecord,
    w: &Window,
) -> Result<Vec<(String, Error)>, Error> {
    let (added, refused) = super::added::columns(shared, s, rec, w).await?;
    if added {
        tracing::info!(
            "fallback: columns added on postgresql were added on sql server and backfilled"
        );
    }
    Ok(refused)
}

/// Records the tables a window stopped (or kept stopped) and those it resumed.
fn note_stopped(rec: &mut FallbackRecord, applied: &apply::Applied) {
    for (table, message, hint) in &applied.stopped {
        match rec.stopped_tables.iter_mut().find(|t| t.table == *table) {
            Some(t) => {
                t.message = message.clone();
                t.hint = hint.clone();
            }
            None => {
                tracing::error!(table = %table, error = %message, "fallback: table stopped; its changes are kept on sql server until it can take them, the other tables go on");
                rec.stopped_tables.push(StoppedTable {
                    table: table.clone(),
                    message: message.clone(),
                    hint: hint.clone(),
                    since_ms: now_ms(),
                });
            }
        }
    }
    for table in &applied.resumed {
        tracing::info!(table = %table, "fallback: table resumed; its kept changes are written");
    }
    rec.stopped_tables
        .retain(|t| !applied.resumed.contains(&t.table));
}

/// The plans of the migrated tables, as the source's catalog says now.
async fn plans(
    shared: &Shared,
    tds: &mut crate::source::Tds,
) -> Result<Vec<crate::convert::TablePlan>, Error> {
    let db = crate::source::database_info(tds).await?;
    let discovered = crate::source::discover::discover(tds, db.cdc_enabled).await?;
    let planned =
        crate::convert::plan_tables(&discovered, &shared.config.tables, &shared.config.mapping)
            .map_err(Error::Fatal)?;
    Ok(planned.plans)
}

/// Writes the record with the slot's lag and retained WAL.
async fn record(
    shared: &Shared,
    pg: &tokio_postgres::Client,
    rec: &mut FallbackRecord,
    applied: Option<PgLsn>,
) -> Result<(), Error> {
    if let Some(a) = applied {
        rec.applied_lsn = Some(a.to_string());
    }
    if let Some(state) = slot::state(pg, &rec.slot).await? {
        rec.retained_bytes = state.retained_bytes;
        rec.lag_bytes = slot::lag_bytes(pg, &rec.slot).await?;
    }
    rec.updated_ms = now_ms();
    rec.retained_over_limit = rec.retained_bytes > shared.config.fallback.max_retained_wal;
    if rec.retained_over_limit {
        tracing::warn!(
            retained_bytes = rec.retained_bytes,
            limit = shared.config.fallback.max_retained_wal,
            "fallback: the slot keeps more wal than fallback.max_retained_wal; it fills the target's disk until applied or dropped (replicator fallback stop)"
        );
    }
    shared.store.set_fallback(rec)
}
