//! The daemon as a service: the store opened, start-up, the tables' tasks, and around them the
//! control socket, the published status file, `/metrics` and systemd's notify protocol, every
//! task owned by the daemon's [`TaskTracker`](tokio_util::task::TaskTracker) and awaited at the
//! end. `cli.rs` turns signals into the `shutdown` token and calls [`serve`].

use crate::config::Config;
use crate::daemon::{self, Shared};
use crate::error::Error;
use crate::state::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The status the daemon publishes every second in `state.dir` (read by `status` while the
/// daemon holds the store).
pub const STATUS_FILE: &str = "status.json";

/// How long the daemon's helper tasks (control answers, status, systemd) may take to finish
/// after the tables' tasks have stopped.
const TASKS_GRACE: Duration = Duration::from_secs(10);

/// Runs the daemon until `shutdown` is cancelled (or a fatal error), then waits for every task
/// it started. `attach` sees the daemon's shared state once it exists (a progress bar, signal
/// handling). Returns why it stopped.
pub async fn serve(
    config: Config,
    shutdown: CancellationToken,
    attach: impl FnOnce(&Arc<Shared>),
) -> Result<(), Error> {
    // A `status` or `history` reader may hold the store for an instant: retry briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match Store::open(&config.state_dir) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                return Err(Error::Fatal(format!(
                    "{e} (is another replicator running with state.dir {}?)",
                    config.state_dir.display()
                )))
            }
        }
    };
    let shared = daemon::shared_with(config, store, shutdown);
    shared.store.journal(
        "daemon_started",
        None,
        format!("version {}", env!("CARGO_PKG_VERSION")),
    )?;
    attach(&shared);
    systemd_notify(&shared);
    if let Some(addr) = shared.config.metrics_listen {
        crate::metrics::serve(
            shared.store.clone(),
            shared.counters.clone(),
            shared.lifecycle.shutdown.clone(),
            addr,
        )?;
    }
    crate::control::serve(shared.clone(), &shared.config.control_socket).await?;
    publish_status(&shared);
    crate::cutover::release::settle(&shared.store, &shared.config).await?;
    // After a `cutover --fallback`, the daemon carries PostgreSQL's changes back instead.
    let result = match shared.store.fallback()? {
        Some(f) if f.active && f.releasing => Err(crate::error::Error::Fatal(
            "a rollback proved every table and was interrupted while releasing SQL Server: run `replicator rollback` to finish it (PostgreSQL stays fenced until then)".into(),
        )),
        Some(f) if f.active => crate::fallback::stream::run(&shared).await,
        _ => {
            warn_of_orphan_slot(&shared.config).await;
            daemon::run(shared.clone()).await
        }
    };
    shared.request_stop();
    shared.lifecycle.tasks.close();
    if tokio::time::timeout(TASKS_GRACE, shared.lifecycle.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = shared.lifecycle.tasks.len(),
            "tasks still running after the daemon stopped: leaving them"
        );
    }
    let _ = std::fs::remove_file(shared.config.state_dir.join(STATUS_FILE));
    match &result {
        Ok(()) => shared.store.journal("daemon_stopped", None, "clean stop")?,
        Err(e) => shared
            .store
            .journal("daemon_stopped", None, e.to_string())?,
    }
    result
}

/// Warns when the fallback's slot exists while no fallback runs (it keeps the target's WAL);
/// a target that cannot be asked now is the daemon's to report.
async fn warn_of_orphan_slot(config: &crate::config::Config) {
    let Ok(pg) = crate::sink::connect(&config.target).await else {
        return;
    };
    if let Ok(Some(w)) = crate::fallback::slot::orphan_warning(&pg, &config.fallback.slot).await {
        tracing::warn!("{w}");
    }
}

/// Status for readers while the store is held: a file replaced atomically every second.
fn publish_status(shared: &Arc<Shared>) {
    let shared = shared.clone();
    let state_dir = shared.config.state_dir.clone();
    shared.clone().lifecycle.tasks.spawn(async move {
        loop {
            if let Ok(s) = daemon::status::build(
                &shared.store,
                Some(&daemon::status::DaemonView::of(&shared)),
            ) {
                let tmp = state_dir.join(format!("{STATUS_FILE}.tmp"));
                if let Ok(text) = serde_json::to_vec_pretty(&s) {
                    if std::fs::write(&tmp, text).is_ok() {
                        let _ = std::fs::rename(&tmp, state_dir.join(STATUS_FILE));
                    }
                }
            }
            if shared.sleep_or_stop(Duration::from_secs(1)).await {
                break;
            }
        }
    });
}

/// systemd (`Type=notify`): READY=1 once start-up connected to both sides and took every table
/// in; then, when the unit sets `WatchdogSec=`, WATCHDOG=1 at half that period for as long as
/// the streamer keeps going round its loop (a stuck daemon is restarted by systemd), with a
/// one-line STATUS. Does nothing outside systemd.
fn systemd_notify(shared: &Arc<Shared>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let shared = shared.clone();
    shared.clone().lifecycle.tasks.spawn(async move {
        let mut ready = shared.lifecycle.ready.subscribe();
        while !*ready.borrow_and_update() {
            // A start-up that never finishes (a fatal error, a stop) ends this task too.
            tokio::select! {
                changed = ready.changed() => if changed.is_err() { return },
                _ = shared.lifecycle.stopped() => return,
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        tracing::info!("told systemd the daemon is ready");
        let mut usec = 0u64;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
        let every = if watchdog {
            Duration::from_micros(usec / 2)
        } else {
            Duration::from_secs(5)
        };
        loop {
            if shared.sleep_or_stop(every).await {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
                return;
            }
            let summary = shared
                .store
                .tables()
                .map(|t| {
                    let streaming = t
                        .iter()
                        .filter(|(_, r)| r.state == crate::state::TableState::Streaming)
                        .count();
                    format!("{streaming}/{} tables streaming", t.len())
                })
                .unwrap_or_default();
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&summary)]);
            let beat = shared.lifecycle.last_beat_ms();
            let fresh = crate::state::now_ms() - beat
                < (usec as i64 / 1000).max(1000)
                    + daemon::stream::WINDOW_TIMEOUT.as_millis() as i64;
            if watchdog && fresh {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        }
    });
}
