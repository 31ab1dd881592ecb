//! The daemon's life: the stop every task watches, the helper tasks it owns, readiness and the
//! streamer's heartbeat.
//!
//! Contract: [`Lifecycle::request_stop`] is idempotent and reaches every task through the
//! token; every task spawned on [`Lifecycle::tasks`] is awaited by whoever runs the daemon.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The daemon's life, shared by its tasks.
pub struct Lifecycle {
    /// Cancelled when the daemon is to stop (a signal, `stop` on the control socket, a fatal
    /// error); every task watches it.
    pub shutdown: CancellationToken,
    /// Every task the daemon starts besides the tables' own (owned, awaited by
    /// [`crate::serve::serve`]).
    pub tasks: TaskTracker,
    /// Set once start-up connected to both sides and took every table in (systemd's READY).
    pub ready: watch::Sender<bool>,
    /// Started (Unix ms).
    pub started_ms: i64,
    heartbeat_ms: AtomicI64,
}

impl Lifecycle {
    /// A daemon starting now, stopping when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Lifecycle {
        let now = crate::state::now_ms();
        Lifecycle {
            shutdown,
            tasks: TaskTracker::new(),
            ready: watch::channel(false).0,
            started_ms: now,
            heartbeat_ms: AtomicI64::new(now),
        }
    }

    /// Whether shutdown was requested.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Requests shutdown (idempotent).
    pub fn request_stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until shutdown is requested or `d` passes; true when stopping.
    pub async fn sleep_or_stop(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.shutdown.cancelled() => true,
        }
    }

    /// Completes when shutdown is requested.
    pub async fn stopped(&self) {
        self.shutdown.cancelled().await
    }

    /// Whether start-up finished.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The streamer went round its loop now (the systemd watchdog's evidence).
    pub fn beat(&self) {
        self.heartbeat_ms
            .store(crate::state::now_ms(), Ordering::Relaxed);
    }

    /// When the streamer last went round its loop (Unix ms).
    pub fn last_beat_ms(&self) -> i64 {
        self.heartbeat_ms.load(Ordering::Relaxed)
    }
}
