//! `replicator cutover`: drain to the source's final position, validate, sync identities,
//! validate the foreign keys, mark every table `cut_over`, and report the measured downtime.
//!
//! Contract: refuses with a clear reason, changing nothing, when a table is not streaming; a
//! failed validation leaves the tables as they were (not cut over; `replicator run` resumes).
//! The downtime is measured from the command's start to its end. With `--fence-source` the
//! source refuses writes to the replicated tables from before the drain on ([`fence`]); a
//! cutover that fails removes the fence again.

pub mod fence;

use crate::config::Config;
use crate::daemon::{self, Shared};
use crate::error::{Context, Error};
use crate::model::quote_pg;
use crate::state::{Store, TableState};
use serde::Serialize;
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
}

/// One table's result.
#[derive(Debug, Clone, Serialize)]
pub struct TableResult {
    /// Source table.
    pub source: String,
    /// Target table.
    pub target: String,
    /// Rows at the source.
    pub source_rows: i64,
    /// Rows on the target.
    pub target_rows: i64,
    /// `equal` or `different`.
    pub result: String,
    /// Identity set to continue after this value, when the table has one.
    pub identity_synced_to: Option<i64>,
    /// Checksums were computed by both databases (only differing buckets were read).
    pub checked_in_database: bool,
    /// Rows the comparison read into the replicator, both sides together.
    pub rows_read: i64,
}

/// The cutover report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// All tables equal, foreign keys valid: the target is ready.
    pub ok: bool,
    /// Seconds from the command's start to its end (the write downtime the operator took).
    pub downtime_seconds: f64,
    /// Seconds spent draining the last changes.
    pub drain_seconds: f64,
    /// Per table.
    pub tables: Vec<TableResult>,
    /// Foreign keys validated.
    pub foreign_keys_validated: usize,
    /// Problems, each naming its table.
    pub problems: Vec<String>,
    /// The source write fence, with `--fence-source`.
    pub fence: Option<fence::Fence>,
    /// When it finished (RFC 3339).
    pub finished_at: String,
}

impl Report {
    /// Human rendering.
    pub fn render(&self) -> String {
        let mut out = format!(
            "cutover {}: downtime {:.2} s (drain {:.2} s), {} foreign key(s) validated\n",
            if self.ok { "complete" } else { "FAILED" },
            self.downtime_seconds,
            self.drain_seconds,
            self.foreign_keys_validated
        );
        out.push_str(&format!(
            "{:<34} {:<34} {:>12} {:>12}  {:<9} {}\n",
            "SOURCE", "TARGET", "SOURCE ROWS", "TARGET ROWS", "RESULT", "IDENTITY"
        ));
        for t in &self.tables {
            out.push_str(&format!(
                "{:<34} {:<34} {:>12} {:>12}  {:<9} {}\n",
                t.source,
                t.target,
                t.source_rows,
                t.target_rows,
                t.result,
                t.identity_synced_to
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into())
            ));
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        if let Some(f) = &self.fence {
            if f.lowered {
                out.push_str("the source fence was removed: the source accepts writes again\n");
            } else {
                out.push_str(&format!(
                    "the source refuses writes to {} table(s); to allow them again (rolling back to SQL Server), run there:\n{}\n",
                    f.tables.len(),
                    f.undo_sql
                ));
            }
        }
        out
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

/// Runs the cutover. With a daemon running (answering on the control socket), it is asked to
/// stop first; the drain then runs here.
pub async fn run(config: Config, opts: Options) -> Result<Report, Error> {
    let t0 = Instant::now();
    let socket = config.control_socket.clone();
    if let Some(status) = crate::control::request(&socket, "status").await {
        if let Some(why) = refuse_reason(&status) {
            return Err(Error::Fatal(format!(
                "cutover refused, nothing changed: {why}"
            )));
        }
        crate::control::request(&socket, "stop").await;
    }
    // Wait for the daemon to let go of the store.
    let store = loop {
        match Store::open(&config.state_dir) {
            Ok(s) => break s,
            Err(e) if t0.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
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
        "drain, validate, sync identities, validate foreign keys",
    )?;
    let shared = daemon::shared(config, store);
    daemon::prepare(&shared).await?;
    let mut fenced = match opts.fence_source {
        true => Some(raise_fence(&shared, opts.timeout).await?),
        false => None,
    };
    let outcome = drain_and_finish(&shared, &opts, t0).await;
    let failed = outcome.as_ref().map_or(true, |r| !r.ok);
    if let (Some(f), true) = (fenced.as_mut(), failed) {
        if let Err(e) = lower_fence(&shared, f).await {
            return Err(match outcome {
                Err(first) => Error::Fatal(format!("{first}; {e}")),
                Ok(_) => e,
            });
        }
    }
    let mut report = outcome?;
    report.fence = fenced;
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

async fn drain_and_finish(
    shared: &Arc<Shared>,
    opts: &Options,
    t0: Instant,
) -> Result<Report, Error> {
    tracing::info!("cutover: draining to the source's current position");
    let drain_start = Instant::now();
    daemon::stream::drain(shared, drain_start + opts.timeout).await?;
    let drain_seconds = drain_start.elapsed().as_secs_f64();
    tracing::info!(drain_seconds, "cutover: drained; validating every row");
    finish(shared, opts, t0, drain_seconds).await
}

/// Fences every replicated table (see [`fence`]) and journals it.
async fn raise_fence(shared: &Arc<Shared>, lock_wait: Duration) -> Result<fence::Fence, Error> {
    let tables: Vec<_> = shared
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

async fn finish(
    shared: &Arc<Shared>,
    opts: &Options,
    t0: Instant,
    drain_seconds: f64,
) -> Result<Report, Error> {
    let mut tds = crate::source::connect(&shared.config.source).await?;
    let mut pg = crate::sink::connect(&shared.config.target).await?;
    let tables = shared.runtimes()?;
    let mut results = Vec::new();
    let mut problems = Vec::new();
    // Final validation: every row and value, both sides at the same position (writes are
    // stopped and drained).
    crate::source::execute(
        &mut tds,
        "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
        "set snapshot isolation",
    )
    .await?;
    for (name, rt) in &tables {
        let plan = &rt.plan;
        let read = pg
            .transaction()
            .await
            .context(|| "begin the final validation".into())?;
        let outcome = crate::validate::full(
            &mut tds,
            &read,
            plan,
            &shared.config.policies,
            &Default::default(),
            crate::validate::FullOptions::configured(&shared.config, 1.0),
        )
        .await?;
        read.commit()
            .await
            .context(|| "end the final validation".into())?;
        let (source_rows, target_rows) = (outcome.source_rows, outcome.target_rows);
        let equal = outcome.equal();
        if !equal {
            problems.push(format!(
                "{name}: {source_rows} rows at the source, {target_rows} on the target, {} key(s) differ",
                outcome.differing
            ));
            problems.extend(outcome.findings.iter().cloned());
        }
        let record = crate::state::ValidationRecord {
            at_ms: crate::state::now_ms(),
            result: if equal { "equal" } else { "different" }.into(),
            mode: "full".into(),
            findings: outcome.findings.clone(),
            source_rows,
            target_rows,
        };
        shared.store.update(name, |old| {
            let mut r = old.unwrap_or_else(|| {
                crate::state::TableRecord::new(plan.target.to_string(), rt.kind.label(), 0)
            });
            r.last_validation = Some(record);
            r
        })?;
        // Identity: continue after the source's IDENT_CURRENT.
        let mut synced = None;
        if let Some(col) = plan.columns.iter().find(|c| c.identity) {
            if let Some(ident) =
                crate::source::discover::ident_current(&mut tds, &plan.source.name).await?
            {
                let seq: Option<String> = pg
                    .query_one(
                        "SELECT pg_get_serial_sequence($1, $2)",
                        &[&plan.target.sql(), &col.target],
                    )
                    .await
                    .context(|| format!("find the identity sequence of {}", plan.target))?
                    .get(0);
                if let Some(seq) = seq {
                    pg.execute(
                        "SELECT setval($1::text::regclass, $2, true)",
                        &[&seq, &ident.max(1)],
                    )
                    .await
                    .context(|| format!("sync the identity of {}", plan.target))?;
                    synced = Some(ident);
                }
            }
        }
        results.push(TableResult {
            source: name.clone(),
            target: plan.target.to_string(),
            source_rows,
            target_rows,
            result: if equal { "equal" } else { "different" }.into(),
            identity_synced_to: synced,
            checked_in_database: outcome.in_database,
            rows_read: outcome.rows_read,
        });
    }
    // Foreign keys: those not created yet, then validate every NOT VALID one.
    let pending: Vec<(String, String, String)> = shared
        .deferred_fks
        .lock()
        .map_err(|_| Error::Fatal("lock".into()))?
        .clone();
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
                    "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'f' AND NOT convalidated",
                    &[&rt.plan.target.sql()],
                )
                .await
                .context(|| format!("list foreign keys of {}", rt.plan.target))?;
            for r in rows {
                let con: String = r.get(0);
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
                        "{}: foreign key {con} does not hold: {}",
                        rt.plan.target,
                        e.as_db_error()
                            .map(|d| d.message().to_string())
                            .unwrap_or(e.to_string())
                    )),
                }
            }
        }
    }
    let ok = problems.is_empty();
    if !ok {
        // Drained and unchanged: the tables stream on when the daemon runs again.
        for (name, _) in &tables {
            shared.set_state(name, TableState::Streaming)?;
        }
    }
    if ok {
        if !opts.keep_progress {
            pg.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_pg(&shared.config.mapping.progress_schema)
            ))
            .await
            .context(|| "drop the progress schema".into())?;
        }
        for (name, _) in &tables {
            shared.set_state(name, TableState::CutOver)?;
        }
    }
    Ok(Report {
        ok,
        downtime_seconds: t0.elapsed().as_secs_f64(),
        drain_seconds,
        tables: results,
        foreign_keys_validated: validated,
        problems,
        fence: None,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}
