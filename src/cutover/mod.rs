//! `replicator cutover`: prove every table equal while the application still writes, then
//! inside a short write window drain to the source's final position, compare only what changed
//! since each proof, sync identities, validate the foreign keys, mark every table `cut_over`,
//! and report the measured downtime split into its parts.
//!
//! Contract: refuses with a clear reason, changing nothing, when a table is not streaming or
//! still differs after its repair; a failed check leaves the tables as they were (not cut over;
//! `replicator run` resumes). With `--fence-source` the downtime is measured from raising the
//! source fence ([`fence`]) to the end, and a cutover that fails removes the fence again;
//! without it, from the command's start (the application was stopped before it).

pub mod check;
pub mod fence;
pub mod prove;
pub mod release;
pub mod report;
pub mod rollback;

use crate::config::Config;
use crate::daemon::{self, Shared};
use crate::error::{Context, Error};
use crate::model::quote_pg;
use crate::sink::{guard, progress};
use crate::state::{Store, TableState};
pub use report::{Parts, Report, TableResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the command.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the drain may take.
    pub timeout: Duration,
    /// Keep the target's progress schema.
    pub keep_progress: bool,
    /// Make the source refuse writes to the replicated tables ([`fence`]).
    pub fence_source: bool,
    /// A proof of equality at most this old is reused instead of validating again.
    pub validated_within: Duration,
    /// Compare every row inside the window, proofs or not.
    pub full_check_in_window: bool,
    /// Keep SQL Server in sync with PostgreSQL afterwards (a logical replication slot created
    /// before the release; implies `fence_source`).
    pub fallback: bool,
}

impl Options {
    /// The defaults the command line uses.
    pub fn new(fence_source: bool) -> Options {
        Options {
            timeout: Duration::from_secs(600),
            keep_progress: false,
            fence_source,
            validated_within: Duration::from_secs(30 * 60),
            full_check_in_window: false,
            fallback: false,
        }
    }
}

/// Checks that every table streams (from a status document); the reason when not.
pub fn refuse_reason(status: &serde_json::Value) -> Option<String> {
    let tables = status["tables"].as_array()?;
    if tables.is_empty() {
        return Some("no table is replicated yet: run `replicator run` first".into());
    }
    let not: Vec<String> = tables
        .iter()
        .filter(|t| t["state"] != "streaming")
        .map(|t| {
            format!(
                "{} is {}",
                t["source"].as_str().unwrap_or("?"),
                t["state"].as_str().unwrap_or("?")
            )
        })
        .collect();
    (!not.is_empty()).then(|| format!("every table must be streaming: {}", not.join(", ")))
}

/// Runs the cutover. With a daemon running (answering on the control socket), it proves the
/// tables equal first ([`prove`]) and is then asked to stop; the drain runs here.
pub async fn run(config: Config, opts: Options) -> Result<Report, Error> {
    let t0 = Instant::now();
    let socket = config.control_socket.clone();
    let mut before = prove::Before::default();
    if let Some(status) = crate::control::request(&socket, &crate::control::Request::Status).await {
        if let Some(why) = refuse_reason(&status) {
            return Err(Error::Fatal(format!(
                "cutover refused, nothing changed: {why}"
            )));
        }
        if !opts.full_check_in_window {
            let tables: Vec<String> = status["tables"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["source"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            before = prove::before_window(&config, &opts, &tables).await?;
        }
        crate::control::request(&socket, &crate::control::Request::Stop).await;
    } else if !opts.full_check_in_window {
        before.notes.push("no daemon answered: proofs recorded earlier are used where they hold, other tables are compared in full inside the window".into());
    }
    // Wait for the daemon to let go of the store.
    let waited = Instant::now();
    let store = loop {
        match Store::open(&config.state_dir) {
            Ok(s) => break s,
            Err(e) if waited.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // A cutover killed inside its release: the store learns what PostgreSQL holds (released
    // tables are then refused below as cut over; unreleased ones are cut over now).
    release::settle(&store, &config).await?;
    let status = serde_json::to_value(daemon::status::build(&store, None)?).unwrap_or_default();
    if let Some(why) = refuse_reason(&status) {
        return Err(Error::Fatal(format!(
            "cutover refused, nothing changed: {why}"
        )));
    }
    tracing::info!("cutover: the daemon is stopped and the store is ours");
    store.journal(
        "cutover_started",
        None,
        "drain, check what changed since each proof, sync identities, validate foreign keys",
    )?;
    let shared = daemon::shared(config, store);
    daemon::prepare(&shared).await?;
    if opts.fallback {
        let notes = fallback_possible(&shared).await.map_err(|why| {
            Error::Fatal(format!(
                "cutover refused, nothing changed: --fallback: {why}"
            ))
        })?;
        before.notes.extend(notes);
    }
    let window = Instant::now();
    let mut parts = Parts::default();
    let mut fenced = match opts.fence_source || opts.fallback {
        true => Some(raise_fence(&shared, opts.timeout).await?),
        false => None,
    };
    parts.fence = window.elapsed().as_secs_f64();
    let outcome = in_window(&shared, &opts, &mut parts).await;
    let failed = outcome.as_ref().map_or(true, |r| !r.ok);
    if let (Some(f), true) = (fenced.as_mut(), failed) {
        let unfence = Instant::now();
        let lowered = lower_fence(&shared, f).await;
        parts.unfence = unfence.elapsed().as_secs_f64();
        if let Err(e) = lowered {
            return Err(match outcome {
                Err(first) => Error::Fatal(format!("{first}; {e}")),
                Ok(_) => e,
            });
        }
    }
    let mut report = outcome?;
    report.fence = fenced;
    report.parts = parts;
    report.downtime_seconds = match opts.fence_source || opts.fallback {
        true => window.elapsed().as_secs_f64(),
        false => t0.elapsed().as_secs_f64(),
    };
    report.command_seconds = t0.elapsed().as_secs_f64();
    report.prove_seconds = before.seconds;
    report.foreign_keys_validated_before = before.foreign_keys_validated;
    let mut notes = before.notes;
    notes.append(&mut report.notes);
    report.notes = notes;
    shared.store.set_meta(
        "cutover",
        &serde_json::to_string(&report).unwrap_or_default(),
    )?;
    shared.store.journal(
        "cutover",
        None,
        format!(
            "{}: downtime {:.2} s",
            if report.ok { "complete" } else { "failed" },
            report.downtime_seconds
        ),
    )?;
    Ok(report)
}

/// The write window after the fence: drain, check each table, identities, foreign keys, and
/// (all equal) release the tables to the application.
async fn in_window(
    shared: &Arc<Shared>,
    opts: &Options,
    parts: &mut Parts,
) -> Result<Report, Error> {
    tracing::info!("cutover: draining to the source's current position");
    let drain_start = Instant::now();
    daemon::stream::drain(shared, drain_start + opts.timeout).await?;
    parts.drain = drain_start.elapsed().as_secs_f64();
    tracing::info!(drain_seconds = parts.drain, "cutover: drained; checking");
    let mut tds = crate::source::connect(&shared.config.source).await?;
    crate::source::execute(
        &mut tds,
        "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
        "set snapshot isolation",
    )
    .await?;
    let mut pg = crate::sink::connect(&shared.config.target).await?;
    let tables = shared.registry.runtimes()?;
    let schema = shared.config.mapping.progress_schema.clone();
    let standing = progress::load(&pg, &schema).await?;
    let min_valid = match tables
        .iter()
        .any(|t| t.1.kind == crate::model::ChangeSource::ChangeTracking)
    {
        true => crate::source::ct::min_valid_versions(&mut tds).await?,
        false => Default::default(),
    };
    let mut results = Vec::new();
    let mut problems = Vec::new();
    for (name, rt) in &tables {
        let basis = check::basis(
            &mut tds,
            &pg,
            opts,
            rt,
            standing.get(name),
            &min_valid,
            &schema,
        )
        .await?;
        let (mut r, mut found) =
            check::table(shared, &mut tds, &mut pg, (name, rt), basis, parts).await?;
        problems.append(&mut found);
        let t = Instant::now();
        r.identity_synced_to = check::sync_identity(&mut tds, &pg, rt).await?;
        parts.identities += t.elapsed().as_secs_f64();
        results.push(r);
    }
    let t = Instant::now();
    let plans: Vec<crate::convert::TablePlan> =
        tables.iter().map(|(_, rt)| (*rt.plan).clone()).collect();
    let sequences_synced =
        check::sync_sequences(&mut tds, &pg, &plans, &shared.config.mapping).await?;
    parts.identities += t.elapsed().as_secs_f64();
    let fk_start = Instant::now();
    // Foreign keys: those not created yet, then validate every NOT VALID one.
    let pending = shared.registry.deferred_foreign_keys()?;
    for (_, _, sql) in &pending {
        if let Err(e) = pg.batch_execute(sql).await {
            if e.code().is_none_or(|c| c.code() != "42710") {
                problems.push(format!(
                    "foreign key not created: {}",
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or(e.to_string())
                ));
            }
        }
    }
    let mut validated = 0;
    if problems.is_empty() {
        for (_, rt) in &tables {
            let rows = pg
                .query(
                    "SELECT conname::text, contype::text FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype IN ('f', 'c') AND NOT convalidated",
                    &[&rt.plan.target.sql()],
                )
                .await
                .context(|| format!("list the constraints to validate of {}", rt.plan.target))?;
            for r in rows {
                let con: String = r.get(0);
                let what = if r.get::<_, String>(1) == "c" {
                    "check constraint"
                } else {
                    "foreign key"
                };
                match pg
                    .batch_execute(&format!(
                        "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                        rt.plan.target.sql(),
                        quote_pg(&con)
                    ))
                    .await
                {
                    Ok(()) => validated += 1,
                    Err(e) => problems.push(format!(
                        "{}: {what} {con} does not hold: {}",
                        rt.plan.target,
                        e.as_db_error()
                            .map(|d| d.message().to_string())
                            .unwrap_or(e.to_string())
                    )),
                }
            }
        }
    }
    parts.foreign_keys = fk_start.elapsed().as_secs_f64();
    // The slot before the release: it keeps every change made after it, and nothing but the
    // release (DDL, not decoded) comes between.
    let mut fallback = None;
    let mut notes = Vec::new();
    if problems.is_empty() && opts.fallback {
        let targets: Vec<_> = tables
            .iter()
            .map(|(_, rt)| rt.plan.target.clone())
            .collect();
        let slot = &shared.config.fallback.slot;
        match fresh_slot(&pg, &mut tds, slot, &targets, &mut notes).await {
            Ok(lsn) => {
                fallback = Some(report::FallbackStart {
                    slot: slot.clone(),
                    since_lsn: lsn.to_string(),
                })
            }
            Err(e) => problems.push(format!("the fallback's slot: {e}")),
        }
    }
    if problems.is_empty() && !opts.fallback {
        // No fallback wanted: a slot an interrupted `cutover --fallback` left would keep the
        // target's WAL for ever.
        let slot = &shared.config.fallback.slot;
        if crate::fallback::slot::state(&pg, slot).await?.is_some() {
            crate::fallback::slot::drop_all(&pg, slot).await?;
            notes.push(format!(
                "replication slot {slot} (left by an interrupted cutover --fallback) dropped: no fallback was asked for"
            ));
        }
    }
    let ok = problems.is_empty();
    if !ok && fallback.take().is_some() {
        let _ = crate::fallback::slot::drop_all(&pg, &shared.config.fallback.slot).await;
    }
    let release = Instant::now();
    if !ok {
        // Drained and unchanged: the tables stream on when the daemon runs again.
        for (name, _) in &tables {
            shared.set_state(name, TableState::Streaming)?;
        }
    }
    if ok {
        // The tables are the application's now: the guards go, in one transaction with the
        // progress schema (whose function they call). The intent first, so a kill between the
        // commit and the store's record is settled at the next start ([`release`]).
        let intent = release::Intent {
            tables: tables
                .iter()
                .map(|(name, rt)| (name.clone(), rt.plan.target.clone()))
                .collect(),
            fallback: fallback
                .as_ref()
                .map(|f| (f.slot.clone(), f.since_lsn.clone())),
        };
        release::record(&shared.store, &intent)?;
        let tx = pg
            .transaction()
            .await
            .context(|| "begin the release".into())?;
        for (_, rt) in &tables {
            guard::remove(&tx, &rt.plan.target).await?;
        }
        notes.extend(check::continue_rowversions(&mut tds, &tx, &plans).await?);
        if !opts.keep_progress {
            tx.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_pg(&schema)
            ))
            .await
            .context(|| "drop the progress schema".into())?;
        }
        tx.commit().await.context(|| "commit the release".into())?;
        release::finish(&shared.store, &intent)?;
    }
    parts.release = release.elapsed().as_secs_f64();
    let views_created = if ok {
        create_views(&mut tds, &pg, &plans, &shared.config.mapping, &mut notes).await?
    } else {
        Vec::new()
    };
    Ok(Report {
        ok,
        downtime_seconds: 0.0,
        parts: Parts::default(),
        command_seconds: 0.0,
        prove_seconds: 0.0,
        tables: results,
        foreign_keys_validated_before: 0,
        foreign_keys_validated: validated,
        sequences_synced,
        views_created,
        notes,
        problems,
        fence: None,
        fallback,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Whether PostgreSQL's changes can go back: logical decoding on the target, and every
/// column's value invertible into its SQL Server type. `Err` says what is missing; the notes
/// say what goes back less exactly than it came (a sql_variant kept as text).
/// The fallback's slot, made now (the tables fenced and drained), with SQL Server's side of it
/// starting afresh ([`crate::fallback::apply::forget`]). A slot an interrupted `cutover
/// --fallback` left is dropped first: it holds every change the replicator itself wrote since,
/// which SQL Server has already (its inserts would fail there).
async fn fresh_slot(
    pg: &tokio_postgres::Client,
    tds: &mut crate::source::Tds,
    slot: &str,
    targets: &[crate::model::PgTableName],
    notes: &mut Vec<String>,
) -> Result<crate::fallback::decode::PgLsn, Error> {
    if crate::fallback::slot::state(pg, slot).await?.is_some() {
        crate::fallback::slot::drop_all(pg, slot).await?;
        notes.push(format!(
            "replication slot {slot} (left by an interrupted cutover --fallback) made anew: the fallback starts now"
        ));
    }
    crate::fallback::apply::forget(tds, slot).await?;
    crate::fallback::slot::ensure(pg, slot, targets).await
}

async fn fallback_possible(shared: &Arc<Shared>) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    let pg = crate::sink::connect(&shared.config.target)
        .await
        .map_err(|e| e.to_string())?;
    let level = crate::fallback::slot::wal_level(&pg)
        .await
        .map_err(|e| e.to_string())?;
    if level != "logical" {
        return Err(format!(
            "the target's wal_level is {level}; logical decoding needs wal_level = logical \
             (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)"
        ));
    }
    for (name, rt) in shared.registry.runtimes().map_err(|e| e.to_string())? {
        for col in &rt.plan.columns {
            let Some(source) = rt.plan.source.columns.iter().find(|c| c.name == col.source) else {
                continue;
            };
            if source.computed.is_some()
                || matches!(source.source_type.name.as_str(), "timestamp" | "rowversion")
            {
                continue;
            }
            crate::fallback::inverse::invertible(col, &source.source_type)
                .map_err(|why| format!("table {name}: {why}"))?;
            if source.source_type.name == "sql_variant"
                && col.kind != crate::convert::TargetKind::Jsonb
            {
                notes.push(format!(
                    "table {name}: sql_variant column {} is text on PostgreSQL: the fallback writes its values back as nvarchar, their base type unknown (mapping.types.sql_variant = \"jsonb\" keeps it)",
                    col.source
                ));
            }
        }
    }
    Ok(notes)
}

/// Creates the source's views that translate ([`crate::sink::ddl::views`]), in dependency
/// order, once the tables are the application's: a view PostgreSQL refuses, or one that does
/// not translate, is a note (its text is in `schema --report`'s `by_hand/`), never a failed
/// cutover. Returns the views created.
async fn create_views(
    tds: &mut crate::source::Tds,
    pg: &tokio_postgres::Client,
    plans: &[crate::convert::TablePlan],
    mapping: &crate::config::Mapping,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, Error> {
    let modules = crate::assess::modules(tds).await?;
    let definitions = crate::assess::view_definitions(&modules);
    let mut created = Vec::new();
    for v in crate::sink::ddl::views(plans, &definitions, mapping) {
        match v.result {
            Ok((target, sql)) => match pg.batch_execute(&sql).await {
                Ok(()) => created.push(target.to_string()),
                Err(e) => notes.push(format!(
                    "view {} not created: PostgreSQL refused it: {}",
                    v.source,
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or(e.to_string())
                )),
            },
            Err(why) => notes.push(format!("view {} not created: {why}", v.source)),
        }
    }
    Ok(created)
}

/// Fences every replicated table (see [`fence`]) and journals it.
async fn raise_fence(shared: &Arc<Shared>, lock_wait: Duration) -> Result<fence::Fence, Error> {
    let tables: Vec<_> = shared
        .registry
        .runtimes()?
        .into_iter()
        .map(|(_, rt)| (rt.plan.source.name.clone(), rt.plan.source.object_id))
        .collect();
    let mut tds = crate::source::connect(&shared.config.source).await?;
    let f = fence::raise(&mut tds, &tables, lock_wait)
        .await
        .map_err(|e| {
            Error::Fatal(format!(
                "cutover refused, nothing changed: the source could not be fenced: {e}"
            ))
        })?;
    tracing::info!(
        tables = f.tables.len(),
        "cutover: the source refuses writes to the replicated tables"
    );
    shared.store.journal(
        "source_fenced",
        None,
        format!("{} table(s); undo: {}", f.tables.len(), f.undo_sql),
    )?;
    Ok(f)
}

/// Removes the fence after a failed cutover; an error names the T-SQL to run by hand.
async fn lower_fence(shared: &Arc<Shared>, f: &mut fence::Fence) -> Result<(), Error> {
    let lowered = match crate::source::connect(&shared.config.source).await {
        Ok(mut tds) => fence::lower(&mut tds, f).await,
        Err(e) => Err(e),
    };
    match lowered {
        Ok(()) => {
            tracing::info!("cutover failed: the source fence was removed, writes are accepted again");
            shared.store.journal("source_unfenced", None, "cutover failed")?;
            Ok(())
        }
        Err(e) => Err(Error::Fatal(format!(
            "cutover failed and the source fence could not be removed ({e}); the source still refuses writes: run there\n{}",
            f.undo_sql
        ))),
    }
}
