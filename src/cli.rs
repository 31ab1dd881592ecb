//! The command line: `run`, `status`, `schema`, `check`, `cutover`, `validate`, `resync`,
//! `history`. Exit code 0 on success; otherwise one line on stderr.

use crate::config::{self, Config, ProcessEnvironment};
use crate::daemon;
use crate::error::Error;
use crate::state::Store;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Migrates a live SQL Server database into PostgreSQL with almost no downtime.
#[derive(Debug, Parser)]
#[command(name = "replicator", version)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "/etc/replicator/replicator.toml")]
    pub config: PathBuf,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human.
    Text,
    /// One JSON object per line.
    Json,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (snapshot, then stream changes) until SIGTERM/SIGINT.
    Run,
    /// Show where every table stands (works with the daemon stopped or running).
    Status {
        /// Machine-readable output (documented in docs/status.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the target DDL without running it. With --report DIR, write the assessment instead:
    /// report.md and report.json (object by object: migrated, translated and how, or to port
    /// by hand and why) and by_hand/*.sql (the text of every view, procedure, function and
    /// trigger).
    Schema {
        /// Write the assessment report into this folder (created if missing).
        #[arg(long, value_name = "DIR")]
        report: Option<std::path::PathBuf>,
    },
    /// Preflight: connectivity, versions, snapshot isolation, CT/CDC per table (with the T-SQL
    /// that enables them), retention, permissions, keys, lossy columns, target permissions and
    /// existing tables, and what is not migrated (views, procedures, functions, triggers).
    /// Exit code 1 when something would stop the daemon or a table.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Finish the migration: prove every table equal while the application still writes
    /// (or reuse a recent proof), then in a short window drain, compare only what changed
    /// since, sync identities, validate foreign keys, report the measured downtime. With
    /// --fence-source the source refuses writes from the window on; without it, stop
    /// application writes first.
    Cutover {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// How long draining the last changes may take.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Keep the target's progress schema afterwards.
        #[arg(long)]
        keep_progress: bool,
        /// Make the source refuse writes to the replicated tables from before the drain on
        /// (a THROW trigger per table; removed again if the cutover fails; the report prints
        /// the T-SQL that removes it). The downtime is measured from the fence.
        #[arg(long)]
        fence_source: bool,
        /// Reuse a table's proof of equality (a full validation, by `replicator validate
        /// --full` or an earlier cutover) made at most this long ago; older ones are made
        /// again, before the window, while the application still writes.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        validated_within: Duration,
        /// Compare every row inside the window instead of only what changed since the proof.
        #[arg(long)]
        full_check_in_window: bool,
        /// Keep SQL Server in sync with PostgreSQL afterwards, as a way back: a logical
        /// replication slot is created before the release, and `replicator run` carries
        /// PostgreSQL's changes to SQL Server until `replicator fallback stop`. Implies
        /// --fence-source (the fallback's writes pass the fence). Needs wal_level = logical.
        #[arg(long)]
        fallback: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the target with the source now, while replication runs (the daemon must run):
    /// exact row counts and a random sample, or every row with --full. Exit code 1 when a
    /// difference is confirmed.
    Validate {
        /// Only this table (`schema.table` as `status` prints it).
        #[arg(long)]
        table: Option<String>,
        /// Compare every row (bucketed hashes, differing buckets narrowed to keys).
        #[arg(long)]
        full: bool,
        /// Rewrite the confirmed differences from the source.
        #[arg(long)]
        repair: bool,
        /// Compare each translated view's rows on both sides instead of the tables (the
        /// target runs the view's translated query; views are created at cutover).
        #[arg(long, conflicts_with_all = ["table", "full", "repair"])]
        views: bool,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make SQL Server the primary again after `cutover --fallback`: fences PostgreSQL's
    /// writes, applies what the slot still holds, compares every row, lowers SQL Server's fence,
    /// sets its identities past PostgreSQL's, drops the slot, reports the downtime. Refused,
    /// changing nothing, while the fallback has an unapplied window; a table that differs after
    /// the drain lifts PostgreSQL's fence again.
    Rollback {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// How long fencing PostgreSQL (waiting for writers) and draining may take.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The way back after `cutover --fallback`.
    Fallback {
        #[command(subcommand)]
        action: FallbackAction,
    },
    /// Copy one table again while the others stream (after a type change, a stopped table, a
    /// repair too big to do by key). With the daemon stopped, the next start copies it.
    Resync {
        /// The table (`schema.table` as `status` prints it).
        #[arg(long)]
        table: String,
    },
    /// The audit journal: snapshots, re-snapshots and why, schema changes, errors, cutover.
    History {
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
    /// The demo is its own program (the product links no simulator): `bash scripts/demo.sh`.
    #[command(hide = true)]
    Demo {
        /// Ignored: said where the demo is.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The progress bar of `run` on an interactive terminal (absent otherwise).
static BAR: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();

/// Log lines go around the progress bar, never through it.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Sets up logging to stderr: human on a terminal, or one JSON object per line.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPLICATOR_LOG")
        // tiberius warns on every plaintext connection; the daemon says it once instead.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tiberius=error"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Draws the snapshot's progress on an interactive terminal until every table streams.
fn progress_bar(shared: std::sync::Arc<daemon::Shared>) {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} snapshot [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let bar = BAR.get_or_init(|| bar).clone();
    shared.clone().lifecycle.tasks.spawn(async move {
        loop {
            if let Ok(tables) = shared.store.tables() {
                let total: i64 = tables
                    .iter()
                    .map(|(_, r)| r.rows_estimated.max(r.rows_copied))
                    .sum();
                let done: i64 = tables.iter().map(|(_, r)| r.rows_copied).sum();
                let copying = tables
                    .iter()
                    .filter(|(_, r)| {
                        matches!(
                            r.state,
                            crate::state::TableState::Pending
                                | crate::state::TableState::Snapshotting
                        )
                    })
                    .count();
                bar.set_length(total.max(0) as u64);
                bar.set_position(done.max(0) as u64);
                bar.set_message(format!("{copying} table(s) copying"));
                if copying == 0 && !tables.is_empty() {
                    bar.finish_with_message("snapshot done, streaming");
                    return;
                }
            }
            if shared.sleep_or_stop(Duration::from_millis(250)).await {
                bar.abandon();
                return;
            }
        }
    });
}

fn load(path: &Path) -> Result<Config, Error> {
    Ok(config::load(path, &ProcessEnvironment)?)
}

/// Runs a parsed command line; the error is the one-line reason to print.
pub async fn main(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run => run(load(&cli.config)?, &cli.config).await,
        Command::Status { json } => status(&load(&cli.config)?, json).await,
        Command::Schema { report } => {
            let config = load(&cli.config)?;
            if let Some(dir) = report {
                let r = crate::assess::run(&config, &dir).await?;
                eprintln!(
                    "assessment: {} migrated, {} translated, {} to port by hand; see {}",
                    r.totals.migrated,
                    r.totals.translated,
                    r.totals.by_hand,
                    dir.join("report.md").display()
                );
                return Ok(());
            }
            schema(config).await
        }
        Command::Check { json } => {
            let report = crate::check::run(&load(&cli.config)?).await;
            print_report(&report, json, || report.render());
            if report.ok {
                Ok(())
            } else {
                Err(Error::Fatal("check found errors".into()))
            }
        }
        Command::Demo { .. } => Err(Error::Fatal(
            "the demo is its own program, so that this binary holds only the product: run `bash scripts/demo.sh` (or `cargo run --release -p replicator-demo -- --help`)".into(),
        )),
        Command::Cutover {
            yes,
            timeout,
            keep_progress,
            fence_source,
            validated_within,
            full_check_in_window,
            fallback,
            json,
        } => {
            let config = load(&cli.config)?;
            if !yes {
                confirm(
                    "cutover",
                    "application writes to the source must be stopped now. cut over?",
                )?;
            }
            let report = crate::cutover::run(
                config,
                crate::cutover::Options {
                    timeout,
                    keep_progress,
                    fence_source,
                    validated_within,
                    full_check_in_window,
                    fallback,
                },
            )
            .await?;
            print_report(&report, json, || report.render());
            if report.ok {
                Ok(())
            } else {
                Err(Error::Fatal(format!(
                    "cutover failed: {}",
                    report.problems.join("; ")
                )))
            }
        }
        Command::History { json } => history(&load(&cli.config)?, json),
        Command::Validate {
            table,
            full,
            repair,
            views,
            json,
        } => {
            let config = load(&cli.config)?;
            let req = crate::daemon::validation::Request {
                table,
                full,
                repair,
                views,
            };
            validate(&config, req, json).await
        }
        Command::Resync { table } => resync(&load(&cli.config)?, &table).await,
        Command::Fallback {
            action: FallbackAction::Stop,
        } => fallback_stop(&load(&cli.config)?).await,
        Command::Rollback { yes, timeout, json } => {
            let config = load(&cli.config)?;
            if !yes {
                confirm(
                    "rollback",
                    "PostgreSQL stops taking writes to the migrated tables now. roll back to SQL Server?",
                )?;
            }
            let report = crate::cutover::rollback::run(config, timeout).await?;
            print_report(&report, json, || {
                let mut out = format!(
                    "rollback {}: downtime {:.2} s (fence {:.2}, drain {:.2}, validate {:.2}, release {:.2})\n",
                    if report.ok { "complete: SQL Server is the primary again" } else { "refused" },
                    report.downtime_seconds,
                    report.parts.fence,
                    report.parts.drain,
                    report.parts.validate,
                    report.parts.release
                );
                for t in &report.tables {
                    out.push_str(&format!(
                        "{:<40} {:<9} SQL Server {} / PostgreSQL {} rows\n",
                        t.table, t.result, t.source_rows, t.target_rows
                    ));
                }
                for (t, v) in &report.identities_reseeded {
                    out.push_str(&format!("identity of {t} set to {v}\n"));
                }
                for p in &report.problems {
                    out.push_str(&format!("problem: {p}\n"));
                }
                out
            });
            if report.ok {
                Ok(())
            } else {
                Err(Error::Fatal(format!("rollback refused: {}", report.problems.join("; "))))
            }
        }
    }
}

/// `fallback` subcommands.
#[derive(Debug, Subcommand)]
pub enum FallbackAction {
    /// End the fallback for good: stops a running daemon, drops the slot and the publication
    /// (PostgreSQL keeps no more WAL for it). PostgreSQL stays the primary; nothing else changes
    /// there. SQL Server keeps what it received and its fence (the cutover report's T-SQL
    /// removes it).
    Stop,
}

/// `fallback stop`.
async fn fallback_stop(config: &Config) -> Result<(), Error> {
    let request = |r| crate::control::request(&config.control_socket, r);
    if let Some(status) = request(&crate::control::Request::Status).await {
        if status["fallback"].is_null() {
            // A daemon that replicates towards PostgreSQL runs on; only a slot left behind goes.
            return drop_orphan_slot(config).await;
        }
        // A daemon carrying changes back stops first, so the slot is not in use.
        request(&crate::control::Request::Stop).await;
        eprintln!("fallback stop: stopping the running daemon");
    }
    let waited = std::time::Instant::now();
    let store = loop {
        match Store::open(&config.state_dir) {
            Ok(s) => break s,
            Err(e) if waited.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let Some(mut rec) = store.fallback()? else {
        drop(store);
        return drop_orphan_slot(config).await;
    };
    let pg = crate::sink::connect(&config.target).await?;
    crate::fallback::slot::drop_all(&pg, &rec.slot).await?;
    let was_active = rec.active;
    rec.active = false;
    rec.updated_ms = crate::state::now_ms();
    store.set_fallback(&rec)?;
    store.journal(
        "fallback_stopped",
        None,
        format!(
            "slot {} dropped; SQL Server holds changes up to {}",
            rec.slot,
            rec.applied_lsn.as_deref().unwrap_or("the cutover")
        ),
    )?;
    println!(
        "fallback {}: slot {} dropped; PostgreSQL is the primary for good",
        if was_active {
            "stopped"
        } else {
            "was stopped already"
        },
        rec.slot
    );
    // SQL Server's side of it (progress, kept changes) goes too when SQL Server can be reached;
    // left there it is harmless (a later `cutover --fallback` starts afresh).
    let forgot = match crate::source::connect(&config.source).await {
        Ok(mut tds) => crate::fallback::apply::forget(&mut tds, &rec.slot).await,
        Err(e) => Err(e),
    };
    match forgot {
        Ok(()) => println!("sql server: the fallback's progress and kept changes removed ([replicator] schema dropped when empty)"),
        Err(e) => eprintln!("sql server: the fallback's progress and kept changes stay in the [replicator] schema ({e}); run fallback stop again to remove them, or drop the schema's tables by hand"),
    }
    Ok(())
}

/// `fallback stop` when no fallback was started: drops the configured slot an interrupted
/// `cutover --fallback` left (it keeps the target's WAL), or says there is nothing to stop.
async fn drop_orphan_slot(config: &Config) -> Result<(), Error> {
    let pg = crate::sink::connect(&config.target).await?;
    let slot = &config.fallback.slot;
    let Some(state) = crate::fallback::slot::state(&pg, slot).await? else {
        return Err(Error::Fatal(
            "no fallback: the cutover was not made with --fallback, and the target has no slot of it"
                .into(),
        ));
    };
    crate::fallback::slot::drop_all(&pg, slot).await?;
    println!(
        "no fallback ran: slot {slot} (left by an interrupted cutover --fallback, keeping {} bytes of WAL) dropped",
        state.retained_bytes
    );
    Ok(())
}

/// Prints a command's report: JSON with `--json`, its human rendering otherwise.
fn print_report<T: serde::Serialize>(report: &T, json: bool, human: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        print!("{}", human());
    }
}

/// The daemon: until SIGTERM or SIGINT; the in-flight chunk or window finishes or is abandoned
/// (the target's transaction rolls back), state is persisted, exit 0. The first SIGTERM/SIGINT
/// asks for a clean stop, a second one exits at once; SIGHUP reads the configuration again.
pub async fn run(config: Config, path: &Path) -> Result<(), Error> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running: Arc<OnceLock<Arc<daemon::Shared>>> = Arc::new(OnceLock::new());
    let signals = signal_hook_tokio::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| Error::Fatal(format!("cannot install signal handlers: {e}")))?;
    let listener = tokio::spawn(listen(
        signals,
        shutdown.clone(),
        running.clone(),
        path.to_path_buf(),
    ));
    let result = crate::serve::serve(config, shutdown, |shared| {
        let _ = running.set(shared.clone());
        progress_bar(shared.clone());
    })
    .await;
    // The listener outlives the daemon's tasks, so a second signal can always end a slow stop.
    listener.abort();
    let _ = listener.await;
    result
}

/// Signals until the daemon is done: SIGTERM/SIGINT cancel `shutdown` (a second one exits at
/// once), SIGHUP reloads the configuration of the running daemon.
async fn listen(
    mut signals: signal_hook_tokio::Signals,
    shutdown: tokio_util::sync::CancellationToken,
    running: Arc<OnceLock<Arc<daemon::Shared>>>,
    config_path: std::path::PathBuf,
) {
    use futures_util::StreamExt;
    let mut seen = 0;
    while let Some(sig) = signals.next().await {
        if sig == signal_hook::consts::SIGHUP {
            match running.get() {
                Some(shared)
                    if shared
                        .store
                        .fallback()
                        .ok()
                        .flatten()
                        .is_some_and(|f| f.active) =>
                {
                    tracing::warn!("sighup ignored: the daemon carries the fallback (every table is cut over); restart it to read the configuration again");
                }
                Some(shared) => {
                    tracing::info!("sighup: reading the configuration again");
                    daemon::reload::on_sighup(shared, &config_path);
                }
                None => tracing::warn!("sighup before start-up took the tables in: ignored"),
            }
            continue;
        }
        seen += 1;
        tracing::info!(signal = sig, "stopping");
        shutdown.cancel();
        if seen > 1 {
            std::process::exit(130);
        }
    }
}

/// `validate`: asks the running daemon, prints each table's result.
async fn validate(
    config: &Config,
    req: crate::daemon::validation::Request,
    json: bool,
) -> Result<(), Error> {
    let req = crate::control::Request::Validate(req);
    let answer = crate::control::send(
        &config.control_socket,
        &req,
        Duration::from_secs(24 * 3600),
    )
    .await
    .ok_or_else(|| {
        Error::Fatal(format!(
            "no daemon answers on {}: validation compares at replicated positions and needs the running daemon (cutover validates every row when it is stopped)",
            config.control_socket.display()
        ))
    })?;
    if let Some(e) = answer["error"].as_str() {
        return Err(Error::Fatal(e.to_string()));
    }
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    print_report(&results, json, || {
        let mut out = String::new();
        for r in &results {
            out.push_str(&format!(
                "{:<40} {:<6} {:<9} source {} / target {} rows{}{}{}\n",
                r["table"].as_str().unwrap_or(""),
                r["mode"].as_str().unwrap_or(""),
                r["result"].as_str().unwrap_or(""),
                r["source_rows"],
                r["target_rows"],
                match r["repaired"].as_u64() {
                    Some(n) if n > 0 => format!(", {n} repaired"),
                    _ => String::new(),
                },
                match r["proven"].as_bool() {
                    Some(true) => ", proof recorded (cutover checks only what changes after it)",
                    _ => "",
                },
                r["note"]
                    .as_str()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
            for f in r["findings"].as_array().into_iter().flatten() {
                out.push_str(&format!("    {}\n", f.as_str().unwrap_or("")));
            }
        }
        out
    });
    if results.iter().any(|r| r["result"] == "different") {
        return Err(Error::Fatal("validation found differences".into()));
    }
    Ok(())
}

/// `resync`: through the running daemon, or marked for the next start when it is stopped.
async fn resync(config: &Config, table: &str) -> Result<(), Error> {
    let req = crate::control::Request::Resync {
        table: table.to_string(),
    };
    if let Some(answer) =
        crate::control::send(&config.control_socket, &req, Duration::from_secs(10)).await
    {
        if let Some(e) = answer["error"].as_str() {
            return Err(Error::Fatal(e.to_string()));
        }
        println!("{table}: copying again; watch `replicator status`");
        return Ok(());
    }
    let store = Store::open(&config.state_dir).map_err(|e| {
        Error::Fatal(format!(
            "{e} (the daemon may be starting up; try again in a moment)"
        ))
    })?;
    daemon::resync::mark(config, &store, table).await?;
    println!("{table}: marked; the next `replicator run` copies it again");
    Ok(())
}

/// `status`: from the store when the daemon is stopped, from its published status otherwise.
pub async fn status(config: &Config, json: bool) -> Result<(), Error> {
    let live =
        crate::control::request(&config.control_socket, &crate::control::Request::Status).await;
    let status = match live.filter(|v| v.get("tables").is_some()) {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| Error::Fatal(format!("the daemon's status could not be read: {e}")))?,
        None => from_store_or_file(config)?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
    } else {
        print!("{}", daemon::status::render(&status));
    }
    Ok(())
}

fn from_store_or_file(config: &Config) -> Result<daemon::status::Status, Error> {
    Ok(match Store::open(&config.state_dir) {
        Ok(store) => daemon::status::build(&store, None)?,
        Err(_) => {
            let path = config.state_dir.join(crate::serve::STATUS_FILE);
            let mut tries = 0;
            loop {
                match std::fs::read(&path) {
                    Ok(b) => {
                        break serde_json::from_slice(&b)
                            .map_err(|e| Error::Fatal(format!("{}: {e}", path.display())))?;
                    }
                    // The daemon is starting: its first status comes within a second.
                    Err(_) if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        return Err(Error::Fatal(format!(
                            "the state store is in use and {} cannot be read: {e}",
                            path.display()
                        )))
                    }
                }
            }
        }
    })
}

/// `schema`: discovers the source and prints the DDL it would run, with notes on what does not
/// carry over.
pub async fn schema(config: Config) -> Result<(), Error> {
    let mut tds = crate::source::connect(&config.source).await?;
    let db = crate::source::database_info(&mut tds).await?;
    let tables = crate::source::discover::discover(&mut tds, db.cdc_enabled).await?;
    let planned = crate::convert::plan_tables(&tables, &config.tables, &config.mapping)
        .map_err(Error::Fatal)?;
    let plans = planned.plans;
    let mut notes = Vec::new();
    let mut out = String::new();
    for (name, why) in &planned.unplannable {
        out.push_str(&format!("-- {name}: not migrated: {why}\n"));
    }
    let sequences: Vec<_> = crate::source::discover::sequences(&mut tds)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    for q in crate::sink::ddl::sequences_for(&sequences, &plans) {
        out.push_str(&crate::sink::ddl::sequence_sql(q, &config.mapping));
        out.push_str(";\n");
    }
    for p in &plans {
        out.push_str(&format!("-- {} -> {}\n", p.source.name, p.target));
        out.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            crate::model::quote_pg(&p.target.schema)
        ));
        for d in crate::sink::ddl::collation_sql(p)
            .into_iter()
            .chain(crate::sink::ddl::domain_sql(p))
        {
            out.push_str(&d);
            out.push_str(";\n");
        }
        out.push_str(&crate::sink::ddl::create_table_sql(p, &mut notes));
        out.push_str(";\n\n");
    }
    out.push_str("-- after each table's snapshot\n");
    for p in &plans {
        for s in crate::sink::ddl::index_sql(p, config.mapping.identifier_case, &mut notes) {
            out.push_str(&s);
            out.push_str(";\n");
        }
        for s in crate::sink::ddl::comment_sql(p) {
            out.push_str(&s);
            out.push_str(";\n");
        }
        for (_, s) in crate::sink::ddl::check_sql(p, config.mapping.identifier_case, &mut notes) {
            out.push_str(&s);
            out.push_str(";\n");
        }
    }
    out.push_str("\n-- once every table streams (validated at cutover)\n");
    let lookup = |n: &crate::model::TableName| crate::sink::ddl::referenced(&plans, n);
    for p in &plans {
        for (_, s) in crate::sink::ddl::foreign_key_sql(
            p,
            &lookup,
            config.mapping.identifier_case,
            &mut notes,
        ) {
            out.push_str(&s);
            out.push_str(";\n");
        }
    }
    let by_hand: Vec<_> = notes
        .iter()
        .filter(|n| n.fate == crate::sink::ddl::Fate::ByHand)
        .collect();
    if !by_hand.is_empty() {
        out.push_str("\n-- not carried over (to port by hand):\n");
        for n in by_hand {
            out.push_str(&format!("--   {}: {}\n", n.table, n.message));
        }
    }
    print!("{out}");
    Ok(())
}

/// Asks the operator to confirm a cutover on a terminal; refuses elsewhere without `--yes`.
/// Asks on the terminal; `what` is the command (`cutover`, `rollback`), `question` the prompt.
fn confirm(what: &str, question: &str) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Error::Fatal(format!(
            "{what} needs --yes when not run from a terminal"
        )));
    }
    eprint!("{question} type yes: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Fatal(e.to_string()))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Fatal(format!(
            "{what} not confirmed; nothing changed"
        )))
    }
}

/// `history`: the audit journal, oldest first.
pub fn history(config: &Config, json: bool) -> Result<(), Error> {
    let store = Store::open(&config.state_dir).map_err(|e| {
        Error::Fatal(format!(
            "{e} (the daemon holds the store while it runs; stop it to read the history)"
        ))
    })?;
    for e in store.history()? {
        let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        if json {
            println!(
                "{}",
                serde_json::json!({"at": at, "event": e.event, "table": e.table, "detail": e.detail})
            );
        } else {
            println!(
                "{at}  {:<24} {:<28} {}",
                e.event,
                e.table.as_deref().unwrap_or("-"),
                e.detail
            );
        }
    }
    Ok(())
}
