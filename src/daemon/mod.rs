//! The daemon: takes every selected table through its lifecycle
//! (`pending -> snapshotting -> catching_up -> streaming`), persists each step, and stops
//! cleanly on request.
//!
//! Contract: on start-up the target's progress tables decide where each table resumes; a
//! transient error is retried with backoff and never loses data; a table error stops that
//! table only, with a reason and a hint in `status`; a fatal error stops the daemon.

pub mod chunk;
pub mod lifecycle;
pub mod registry;
pub mod reload;
pub mod resync;
pub mod schema;
pub mod snapshot;
pub mod status;
pub mod stream;
pub mod validation;
pub mod view_validation;

use crate::config::{ChangeSourceChoice, Config};
use crate::convert::{plan_tables, Losses, Planned, TablePlan};
use crate::error::{Backoff, Context, Error, ErrorKind};
use crate::model::{ChangeSource, Position, TableName};
use crate::sink::{self, ddl, progress};
use crate::source::{self, Tds};
use crate::state::{ErrorRecord, Store, TableRecord, TableState};
pub use lifecycle::Lifecycle;
pub use registry::{Registry, Requests};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// One table at run time.
#[derive(Debug, Clone)]
pub struct TableRt {
    /// How it is migrated.
    pub plan: Arc<TablePlan>,
    /// Change source.
    pub kind: ChangeSource,
}

impl TableRt {
    /// The shape the target table is written in (recorded on the target's progress row).
    pub fn shape(&self) -> progress::Shape<'_> {
        progress::Shape {
            columns: &self.plan.source.columns,
            capture_instance: self.kind.capture_instance(),
        }
    }
}

/// State shared by the daemon's tasks: the configuration, the store and the counters, and three
/// narrow handles ([`Lifecycle`], [`Registry`], [`Requests`]) that say what a task touches.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The checkpoint store.
    pub store: Store,
    /// Counters for `/metrics`.
    pub counters: Arc<crate::metrics::Counters>,
    /// Stop, owned tasks, readiness, heartbeat.
    pub lifecycle: Lifecycle,
    /// The run's tables, selectors, foreign keys to come.
    pub registry: Registry,
    /// Resyncs and reloads asked for, taken between windows.
    pub requests: Requests,
    /// Snapshot worker slots (each holds a source and a target connection).
    pub snapshot_slots: Arc<Semaphore>,
    /// Held while a window applies: whoever holds it sees the target at committed positions
    /// that do not move (validation pins its snapshot and repairs under it).
    pub apply_gate: tokio::sync::Mutex<()>,
}

impl Shared {
    /// Copies `name` afresh in the background (a re-snapshot, a resync, a table added by a
    /// reload); a failure marks the table errored unless the daemon is stopping.
    pub fn spawn_snapshot(self: &Arc<Self>, name: &str, rt: TableRt) {
        let (sh, name) = (self.clone(), name.to_string());
        self.lifecycle.tasks.spawn(async move {
            let sem = sh.snapshot_slots.clone();
            if let Err(e) = snapshot::snapshot_table(&sh, &name, &rt, None, sem).await {
                if !sh.stopping() {
                    sh.table_failed(&name, &e);
                }
            }
        });
    }

    /// Whether shutdown was requested ([`Lifecycle::stopping`]).
    pub fn stopping(&self) -> bool {
        self.lifecycle.stopping()
    }

    /// Requests shutdown, idempotent ([`Lifecycle::request_stop`]).
    pub fn request_stop(&self) {
        self.lifecycle.request_stop()
    }

    /// Waits until shutdown is requested or `d` passes; true when stopping.
    pub async fn sleep_or_stop(&self, d: Duration) -> bool {
        self.lifecycle.sleep_or_stop(d).await
    }

    /// Records a committed snapshot chunk.
    pub fn snapshot_progress(
        &self,
        table: &str,
        rows: i64,
        losses: &Losses,
        took: Duration,
    ) -> Result<(), Error> {
        let rec = self.store.update(table, |old| {
            let mut r = old.unwrap_or_else(TableRecord::unknown);
            r.rows_copied += rows;
            merge_losses(&mut r, losses);
            r
        })?;
        let rate = rows as f64 / took.as_secs_f64().max(1e-6);
        let remaining = (rec.rows_estimated - rec.rows_copied).max(0) as f64;
        tracing::info!(
            table,
            rows_copied = rec.rows_copied,
            rows_estimated = rec.rows_estimated,
            rows_per_second = rate.round(),
            eta_seconds = (remaining / rate.max(1.0)).round(),
            "snapshot chunk committed"
        );
        Ok(())
    }

    /// Sets a table's state (clearing its error unless `errored`).
    pub fn set_state(&self, table: &str, state: TableState) -> Result<(), Error> {
        self.store.update(table, |old| {
            let mut r = old.unwrap_or_else(TableRecord::unknown);
            r.state = state;
            if state != TableState::Errored {
                r.last_error = None;
            }
            r
        })?;
        Ok(())
    }

    /// Stops one table with a reason and a hint, logged and journaled.
    pub fn table_failed(&self, table: &str, e: &Error) {
        tracing::error!(table, error = %e, hint = e.hint().unwrap_or_default(), "table stopped");
        let _ = self.store.update(table, |old| {
            let mut r = old.unwrap_or_else(TableRecord::unknown);
            r.state = TableState::Errored;
            r.last_error = Some(ErrorRecord {
                message: e.to_string(),
                hint: e.hint(),
                at_ms: crate::state::now_ms(),
            });
            r
        });
        let _ = self.store.journal("error", Some(table), e.to_string());
        self.registry.remove(table);
    }

    /// Records a transient error in status without changing the table's state.
    pub fn note_transient(&self, table: Option<&str>, e: &Error) {
        tracing::warn!(table = table.unwrap_or(""), error = %e, "retrying after a transient error");
        self.counters
            .transient_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = table {
            let _ = self.store.update(t, |old| {
                let mut r = old.unwrap_or_else(TableRecord::unknown);
                r.last_error = Some(ErrorRecord {
                    message: e.to_string(),
                    hint: e.hint(),
                    at_ms: crate::state::now_ms(),
                });
                r
            });
        }
    }
}

fn merge_losses(r: &mut TableRecord, losses: &Losses) {
    for ((col, kind), n) in &losses.counts {
        match r
            .losses
            .iter_mut()
            .find(|(c, k, _)| c == col && k == kind.label())
        {
            Some(e) => e.2 += n,
            None => r.losses.push((col.clone(), kind.label().to_string(), *n)),
        }
    }
}

/// Runs `attempt` until it succeeds, retrying transient failures with backoff until `shared`
/// stops; other errors are returned at once.
async fn retry_transient<T, F, Fut>(shared: &Shared, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut backoff = Backoff::new(Duration::from_secs(30));
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == ErrorKind::Transient && !shared.stopping() => {
                shared.note_transient(None, &e);
                if shared.sleep_or_stop(backoff.next_delay()).await {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects to the source, retrying transient failures until `shared` stops.
pub async fn connect_source(shared: &Shared) -> Result<Tds, Error> {
    retry_transient(shared, || source::connect(&shared.config.source)).await
}

/// Connects to the target, retrying transient failures until `shared` stops.
pub async fn connect_target(shared: &Shared) -> Result<tokio_postgres::Client, Error> {
    retry_transient(shared, || sink::connect(&shared.config.target)).await
}

/// Decides a table's change source; an error names the T-SQL that would enable one.
pub fn decide_change_source(
    plan: &TablePlan,
    db: &source::DatabaseInfo,
) -> Result<ChangeSource, Error> {
    decide_change_source_resuming(plan, db, None)
}

/// As [`decide_change_source`], for a table whose position belongs to capture instance `resume_ci`: that
/// instance is kept while it exists (the first window takes over a newer one at its start LSN,
/// as while streaming); when it is gone, the newest is taken and the window finds the gap.
pub fn decide_change_source_resuming(
    plan: &TablePlan,
    db: &source::DatabaseInfo,
    resume_ci: Option<&str>,
) -> Result<ChangeSource, Error> {
    let t = &plan.source;
    let enable_ct = format!(
        "ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON); \
         ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON; ALTER TABLE {} ENABLE CHANGE_TRACKING",
        t.name.tsql()
    );
    let ct_ok = t.change_tracking && db.ct_retention_minutes.is_some();
    let chosen = resume_ci
        .and_then(|r| t.capture_instances.iter().find(|c| c.name == r))
        .or(t.capture_instances.last());
    let latest_ci = chosen.map(|c| c.name.clone());
    if let Some(ci) = chosen {
        let missing: Vec<&str> = plan
            .columns
            .iter()
            .filter(|c| {
                !c.expression && !ci.columns.iter().any(|x| x.eq_ignore_ascii_case(&c.source))
            })
            .map(|c| c.source.as_str())
            .collect();
        if !missing.is_empty()
            && plan.change_source != ChangeSourceChoice::ChangeTracking
            && plan.change_source != ChangeSourceChoice::None
        {
            return Err(Error::table(
                &t.name,
                format!("capture instance {} does not capture column(s) {}", ci.name, missing.join(", ")),
                Some("enable a capture instance with every migrated column (@captured_column_list = NULL), exclude those columns, or use change_source = \"change_tracking\""),
            ));
        }
    }
    match plan.change_source {
        ChangeSourceChoice::None => Ok(ChangeSource::CopiedOnce),
        ChangeSourceChoice::Cdc => latest_ci.map(ChangeSource::Cdc).ok_or_else(|| {
            Error::table(&t.name, "CDC is not enabled on the table", Some(&format!(
                "EXEC sys.sp_cdc_enable_db; EXEC sys.sp_cdc_enable_table @source_schema = {}, @source_name = {}, @role_name = NULL",
                crate::model::tsql_literal(&t.name.schema), crate::model::tsql_literal(&t.name.name)
            )))
        }),
        ChangeSourceChoice::ChangeTracking if ct_ok => Ok(ChangeSource::ChangeTracking),
        ChangeSourceChoice::ChangeTracking => Err(Error::table(&t.name, "Change Tracking is not enabled on the table", Some(&enable_ct))),
        ChangeSourceChoice::Auto => match latest_ci {
            Some(ci) => Ok(ChangeSource::Cdc(ci)),
            None if ct_ok => Ok(ChangeSource::ChangeTracking),
            None => Err(Error::table(
                &t.name,
                "neither Change Tracking nor CDC is enabled on the table",
                Some(&format!("{enable_ct} (or enable CDC; or set change_source = \"none\" for a table copied once)")),
            )),
        },
    }
}

/// Runs the daemon until `shared.request_stop()`; returns the reason it stopped.
pub async fn run(shared: Arc<Shared>) -> Result<(), Error> {
    let committed = prepare(&shared).await?;
    shared.lifecycle.ready.send_replace(true);
    let snapshots = tokio::spawn(snapshot::run_snapshots(shared.clone(), committed));
    let streamer = tokio::spawn(stream::run(shared.clone()));
    let validator = tokio::spawn(crate::daemon::validation::periodic(shared.clone()));
    let (a, b) = tokio::join!(snapshots, streamer);
    // A validation in flight only reads (or repairs in its own transaction): abandon it.
    validator.abort();
    let _ = validator.await;
    for r in [a, b] {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.request_stop();
                return Err(e);
            }
            Err(e) => return Err(Error::panicked("table", e)),
        }
    }
    Ok(())
}

/// Start-up: connects, discovers and plans the tables, creates missing target tables, and
/// reconciles the store with the target's progress tables (which win). Returns that progress.
pub async fn prepare(
    shared: &Arc<Shared>,
) -> Result<BTreeMap<String, progress::TableProgress>, Error> {
    let cfg = &shared.config;
    if cfg.source.tls == crate::config::SourceTls::Disable {
        tracing::warn!(
            "source.tls = \"disable\": traffic to SQL Server, the login included, is not encrypted"
        );
    }
    let mut tds = connect_source(shared).await?;
    let db = source::database_info(&mut tds).await?;
    tracing::info!(version = %db.version, snapshot_isolation = db.snapshot_isolation, cdc = db.cdc_enabled,
        change_tracking = db.ct_retention_minutes.is_some(), "connected to the source");
    if !db.snapshot_isolation {
        return Err(Error::Fatal(format!(
            "snapshot isolation is off on {}: consistent reads need it. Run: ALTER DATABASE {} SET ALLOW_SNAPSHOT_ISOLATION ON",
            cfg.source.database,
            crate::model::quote_tsql(&cfg.source.database)
        )));
    }
    let discovered = source::discover::discover(&mut tds, db.cdc_enabled).await?;
    let selectors = shared.registry.selectors()?;
    let planned = plan_tables(&discovered, &selectors, &cfg.mapping).map_err(Error::Fatal)?;
    if planned.plans.is_empty() {
        return Err(Error::Fatal(match planned.unplannable.first() {
            Some((_, why)) => format!("no selected table can be migrated: {why}"),
            None => "no source table matches [[tables]]: nothing to migrate".into(),
        }));
    }
    for (name, why) in &planned.unplannable {
        unplannable(shared, name, why)?;
    }
    let plans = planned.plans;
    let pg = connect_target(shared).await?;
    progress::ensure(&pg, &cfg.mapping.progress_schema).await?;
    create_sequences(&mut tds, &pg, &plans, &cfg.mapping).await?;
    let committed = progress::load(&pg, &cfg.mapping.progress_schema).await?;
    let mut committed = committed;
    let mut notes = Vec::new();
    for plan in plans {
        register_table(shared, &pg, plan, &db, &mut committed, &mut notes).await?;
    }
    for n in &notes {
        n.log();
    }
    prepare_foreign_keys(shared)?;
    drop(tds);
    Ok(committed)
}

/// Stops one selected table that cannot be planned, naming why, unless it was cut over
/// already; the other tables run.
pub(crate) fn unplannable(shared: &Shared, name: &TableName, why: &str) -> Result<(), Error> {
    let key = name.to_string();
    if shared
        .store
        .table(&key)?
        .is_some_and(|r| r.state == TableState::CutOver)
    {
        return Ok(());
    }
    shared.table_failed(&key, &Error::table(name, why, Some(Planned::HINT)));
    shared.registry.mark_taken_in(&key);
    Ok(())
}

/// Creates the sequences the migrated tables' schemas hold or their defaults draw from
/// (idempotent), before the tables whose defaults name them. One PostgreSQL cannot hold (a
/// decimal sequence beyond bigint) is logged and left out; cutover sets each after the source's
/// last value.
async fn create_sequences(
    tds: &mut Tds,
    pg: &tokio_postgres::Client,
    plans: &[TablePlan],
    mapping: &crate::config::Mapping,
) -> Result<(), Error> {
    let mut usable = Vec::new();
    for q in source::discover::sequences(tds).await? {
        match q {
            Ok(q) => usable.push(q),
            Err(why) => tracing::warn!(note = %why, "schema conversion note"),
        }
    }
    for q in ddl::sequences_for(&usable, plans) {
        pg.batch_execute(&ddl::sequence_sql(q, mapping))
            .await
            .context(|| format!("create sequence {}", q.name))?;
    }
    Ok(())
}

/// Takes one planned table into the run: its change source, its target table (created, or
/// checked and refused when it holds rows the replicator did not write), its state from the
/// target's progress (which wins over the store). A table-level problem marks that table
/// errored; only a fatal error is returned.
///
/// A table with a progress record is ours, and its target table was built for the shape that
/// record holds, not for what discovery just saw: the source may have changed while the daemon
/// was down. See [`resume_shape`].
pub(crate) async fn register_table(
    shared: &Arc<Shared>,
    pg: &tokio_postgres::Client,
    plan: TablePlan,
    db: &source::DatabaseInfo,
    committed: &mut BTreeMap<String, progress::TableProgress>,
    notes: &mut Vec<crate::sink::ddl::Note>,
) -> Result<(), Error> {
    let name = plan.source.name.to_string();
    if shared
        .store
        .table(&name)?
        .is_some_and(|r| r.state == TableState::CutOver)
    {
        shared.registry.mark_taken_in(&name);
        return Ok(());
    }
    let (plan, resume_ci) = match committed.get_mut(&name) {
        Some(prog) => match resume_shape(shared, pg, plan, prog).await {
            Ok(resumed) => resumed,
            Err(e) if e.kind() == ErrorKind::Table => {
                shared.table_failed(&name, &e);
                shared.registry.mark_taken_in(&name);
                return Ok(());
            }
            Err(e) => return Err(e),
        },
        None => (plan, None),
    };
    let result = register_planned(shared, pg, plan, db, resume_ci, committed, notes).await;
    shared.registry.mark_taken_in(&name);
    result
}

/// The plan a table with a progress record resumes with, and the capture instance its position
/// belongs to.
///
/// - `streaming`: the plan of the recorded shape (the target table's), so the first window
///   compares it with the source's columns and reconciles exactly as while streaming: an added
///   column is added and backfilled in that window's snapshot, a dropped one kept and relaxed, a
///   changed type stops the table with the `resync` hint. A CDC table keeps the capture instance
///   its position belongs to, and the window takes over a newer one at its start LSN.
/// - `snapshotting` with another shape than recorded: nothing of it streams yet, so the target
///   table is dropped and the table copied afresh in the source's shape.
/// - `resync`: the target table is replaced when it no longer fits.
///
/// A record written before shapes were recorded: the shape is derived from the target table
/// (the source's columns whose target column exists there).
async fn resume_shape(
    shared: &Shared,
    pg: &tokio_postgres::Client,
    plan: TablePlan,
    prog: &mut progress::TableProgress,
) -> Result<(TablePlan, Option<String>), Error> {
    let name = plan.source.name.to_string();
    match prog.phase {
        progress::Phase::Resync => {
            ddl::replace_if_other_shape(pg, &plan, prog.columns.as_deref()).await?;
            Ok((plan, None))
        }
        progress::Phase::Snapshotting => {
            let changed = match &prog.columns {
                Some(stored) => !schema::compare(stored, &plan.source.columns).is_empty(),
                None => ddl::check_existing(pg, &plan).await.is_err(),
            };
            if changed {
                tracing::warn!(table = %name, "the source table changed shape while its snapshot was interrupted: copying it again in the new shape");
                shared.store.journal(
                    "schema_change",
                    Some(&name),
                    "shape changed during an interrupted snapshot; copied again",
                )?;
                ddl::drop_table(pg, &plan.target).await?;
                prog.parts.clear();
            }
            Ok((plan, None))
        }
        progress::Phase::Streaming => {
            let stored = match &prog.columns {
                Some(c) => c.clone(),
                None => ddl::columns_present(pg, &plan).await?,
            };
            let resume_ci = prog.capture_instance.clone();
            if stored == plan.source.columns {
                return Ok((plan, resume_ci));
            }
            let mut source = plan.source.clone();
            source.columns = stored;
            let selector = shared
                .config
                .tables
                .get(plan.selector)
                .ok_or_else(|| Error::Fatal("the table's [[tables]] entry is gone".into()))?;
            let resumed = crate::convert::plan_table(
                &source,
                selector,
                plan.selector,
                &shared.config.mapping,
            )
            .map_err(|m| {
                Error::table(
                    &name,
                    format!("the table's recorded shape cannot be planned: {m}"),
                    Some(&format!("run `replicator resync --table {name}`")),
                )
            })?;
            tracing::info!(table = %name, "the source table changed shape while the daemon was stopped: the first window reconciles it");
            Ok((resumed, resume_ci))
        }
    }
}

async fn register_planned(
    shared: &Arc<Shared>,
    pg: &tokio_postgres::Client,
    plan: TablePlan,
    db: &source::DatabaseInfo,
    resume_ci: Option<String>,
    committed: &BTreeMap<String, progress::TableProgress>,
    notes: &mut Vec<crate::sink::ddl::Note>,
) -> Result<(), Error> {
    let name = plan.source.name.to_string();
    let kind = match decide_change_source_resuming(&plan, db, resume_ci.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            shared.store.update(&name, |old| {
                old.unwrap_or_else(|| {
                    TableRecord::new(plan.target.to_string(), None, plan.source.estimated_rows)
                })
            })?;
            shared.table_failed(&name, &e);
            return Ok(());
        }
    };
    let mut plan = plan;
    let fitted = match ddl::ensure_table(pg, &plan, notes).await {
        Ok(true) => Ok(true),
        Ok(false) => ddl::fit_generated(pg, &mut plan).await.map(|()| false),
        Err(e) => Err(e),
    };
    let existed = match fitted {
        Ok(created) => !created,
        Err(e) if e.kind() == ErrorKind::Table => {
            shared.store.update(&name, |old| {
                old.unwrap_or_else(|| {
                    TableRecord::new(
                        plan.target.to_string(),
                        Some(kind.clone()),
                        plan.source.estimated_rows,
                    )
                })
            })?;
            shared.table_failed(&name, &e);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let prog = committed.get(&name);
    if existed && prog.is_none() {
        let has_rows = pg
            .query_opt(&format!("SELECT 1 FROM {} LIMIT 1", plan.target.sql()), &[])
            .await
            .map(|r| r.is_some())
            .unwrap_or(true);
        if has_rows {
            let e = Error::table(&name, format!("target table {} already holds rows that the replicator did not copy", plan.target),
                Some("empty or drop it (the replicator never deletes data it did not write), or map the table elsewhere"));
            shared.table_failed(&name, &e);
            return Ok(());
        }
    }
    // Ours from here on: only the replicator writes it until cutover.
    crate::sink::guard::ensure(pg, &shared.config.mapping.progress_schema, &plan.target).await?;
    if prog.is_some_and(|p| p.phase == progress::Phase::Streaming) {
        // What a table gets after its snapshot, made again (idempotent, cheap when present):
        // a table copied by an earlier release, or before a setting changed, gets what this
        // one would have created.
        let case = shared.config.mapping.identifier_case;
        let mut statements = ddl::index_sql(&plan, case, notes);
        statements.extend(ddl::comment_sql(&plan));
        ddl::run_post_load(pg, &plan.target, &statements).await?;
        let checks = ddl::check_sql(&plan, case, notes);
        notes.extend(ddl::run_checks(pg, &plan, &checks).await);
    }
    let state = match prog.map(|p| p.phase) {
        Some(progress::Phase::Streaming) => TableState::CatchingUp,
        Some(progress::Phase::Snapshotting) => TableState::Snapshotting,
        Some(progress::Phase::Resync) | None => TableState::Pending,
    };
    let est = plan.source.estimated_rows;
    let target = plan.target.to_string();
    let rows_done: i64 = prog
        .map(|p| p.parts.iter().map(|x| x.rows).sum())
        .unwrap_or(0);
    let position = prog.and_then(|p| p.position);
    let start = prog.and_then(|p| p.start);
    shared.store.update(&name, |old| {
        let mut r =
            old.unwrap_or_else(|| TableRecord::new(target.clone(), Some(kind.clone()), est));
        r.target = target.clone();
        r.change_source = Some(kind.clone());
        r.rows_estimated = est.max(r.rows_copied);
        r.state = if r.state == TableState::CutOver {
            TableState::CutOver
        } else {
            state
        };
        r.rows_copied = rows_done;
        r.position = position;
        r.start_position = start;
        r.last_error = None;
        r
    })?;
    shared.registry.insert(
        name,
        TableRt {
            plan: Arc::new(plan),
            kind,
        },
    )
}

/// Computes the foreign keys to create once every table streams.
pub(crate) fn prepare_foreign_keys(shared: &Shared) -> Result<(), Error> {
    let tables = shared.registry.runtimes()?;
    let lookup = |n: &TableName| ddl::referenced(tables.iter().map(|(_, t)| &*t.plan), n);
    let mut notes = Vec::new();
    let mut fks = Vec::new();
    for (_, t) in &tables {
        for (name, sql) in ddl::foreign_key_sql(
            &t.plan,
            &lookup,
            shared.config.mapping.identifier_case,
            &mut notes,
        ) {
            fks.push((t.plan.target.to_string(), name, sql));
        }
    }
    for n in notes {
        n.log();
    }
    shared.registry.set_deferred_foreign_keys(fks)?;
    Ok(())
}

/// Builds the shared state for a run.
pub fn shared(config: Config, store: Store) -> Arc<Shared> {
    shared_with(config, store, CancellationToken::new())
}

/// As [`shared`], stopping when `shutdown` is cancelled.
pub fn shared_with(config: Config, store: Store, shutdown: CancellationToken) -> Arc<Shared> {
    Arc::new(Shared {
        store,
        counters: Default::default(),
        lifecycle: Lifecycle::new(shutdown),
        registry: Registry::new(config.tables.clone()),
        requests: Requests::default(),
        snapshot_slots: Arc::new(Semaphore::new(config.snapshot_workers)),
        apply_gate: tokio::sync::Mutex::new(()),
        config,
    })
}

/// The position a table's stream resumes from (what the target committed).
pub fn resume_position(rec: &TableRecord) -> Option<Position> {
    rec.position
}

#[cfg(test)]
mod tests;
