//! Metrics: every name in one place, rendered in Prometheus's text format for the optional
//! `/metrics` listener (`metrics.listen`, off by default, loopback only).
//!
//! Contract: labels are low-cardinality (table and state names); no row values; the listener
//! answers GET /metrics and nothing else.

use crate::state::Store;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows committed by snapshots, per table.
pub const ROWS_COPIED: &str = "replicator_rows_copied";
/// Source rows estimated, per table.
pub const ROWS_ESTIMATED: &str = "replicator_rows_estimated";
/// Changes applied (rows deleted or upserted), per table.
pub const CHANGES_APPLIED: &str = "replicator_changes_applied_total";
/// Seconds from the source commit of the oldest change of the last window to its target commit.
pub const LAG_SECONDS: &str = "replicator_lag_seconds";
/// 1 for the table's current state.
pub const TABLE_STATE: &str = "replicator_table_state";
/// Change windows applied, and their total duration.
pub const WINDOWS: &str = "replicator_windows_total";
/// Sum of window durations.
pub const WINDOW_SECONDS: &str = "replicator_window_seconds_total";
/// Transient errors retried (connections, timeouts).
pub const TRANSIENT_ERRORS: &str = "replicator_transient_errors_total";
/// Tables stopped with an error.
pub const TABLES_ERRORED: &str = "replicator_tables_errored";
/// 1 when the last validation of the table found differences.
pub const VALIDATION_DIFFERENT: &str = "replicator_validation_different";

/// Counters the daemon bumps as it works (the rest is read from the state store).
#[derive(Debug, Default)]
pub struct Counters {
    /// Windows applied.
    pub windows: AtomicU64,
    /// Their duration, in microseconds.
    pub window_micros: AtomicU64,
    /// Transient errors retried.
    pub transient_errors: AtomicU64,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-table metric: name, type, help, and how to read it from the table's record.
type PerTable = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::state::TableRecord) -> f64,
);

/// The exposition text: per-table figures from the store, the daemon's counters.
pub fn render(store: &Store, counters: &Counters) -> String {
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let tables = store.tables().unwrap_or_default();
    let per_table: [PerTable; 4] = [
        (
            ROWS_COPIED,
            "gauge",
            "rows committed by the snapshot",
            |r| r.rows_copied as f64,
        ),
        (ROWS_ESTIMATED, "gauge", "source rows (estimate)", |r| {
            r.rows_estimated as f64
        }),
        (
            CHANGES_APPLIED,
            "counter",
            "rows deleted or upserted by change windows",
            |r| r.changes_applied as f64,
        ),
        (
            LAG_SECONDS,
            "gauge",
            "source commit to target commit of the last window's oldest change",
            |r| r.lag_seconds,
        ),
    ];
    for (name, kind, help, f) in per_table {
        head(&mut out, name, kind, help);
        for (t, r) in &tables {
            let _ = writeln!(out, "{name}{{table=\"{}\"}} {}", label(t), f(r));
        }
    }
    head(
        &mut out,
        TABLE_STATE,
        "gauge",
        "1 for the table's current state",
    );
    for (t, r) in &tables {
        let _ = writeln!(
            out,
            "{TABLE_STATE}{{table=\"{}\",state=\"{}\"}} 1",
            label(t),
            r.state.label()
        );
    }
    head(
        &mut out,
        VALIDATION_DIFFERENT,
        "gauge",
        "1 when the last validation found differences",
    );
    for (t, r) in &tables {
        let d = r
            .last_validation
            .as_ref()
            .is_some_and(|v| v.result == crate::model::Verdict::Different);
        let _ = writeln!(
            out,
            "{VALIDATION_DIFFERENT}{{table=\"{}\"}} {}",
            label(t),
            d as u8
        );
    }
    head(
        &mut out,
        TABLES_ERRORED,
        "gauge",
        "tables stopped with an error",
    );
    let errored = tables
        .iter()
        .filter(|(_, r)| r.state == crate::state::TableState::Errored)
        .count();
    let _ = writeln!(out, "{TABLES_ERRORED} {errored}");
    let c = counters;
    head(&mut out, WINDOWS, "counter", "change windows applied");
    let _ = writeln!(out, "{WINDOWS} {}", c.windows.load(Ordering::Relaxed));
    head(
        &mut out,
        WINDOW_SECONDS,
        "counter",
        "total duration of change windows",
    );
    let _ = writeln!(
        out,
        "{WINDOW_SECONDS} {}",
        c.window_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    head(
        &mut out,
        TRANSIENT_ERRORS,
        "counter",
        "transient errors retried",
    );
    let _ = writeln!(
        out,
        "{TRANSIENT_ERRORS} {}",
        c.transient_errors.load(Ordering::Relaxed)
    );
    out
}

/// Serves `/metrics` on `addr` (tiny_http, on its own thread) until `stop` is cancelled.
pub fn serve(
    store: Store,
    counters: Arc<Counters>,
    stop: tokio_util::sync::CancellationToken,
    addr: std::net::SocketAddr,
) -> Result<(), crate::error::Error> {
    let server = tiny_http::Server::http(addr).map_err(|e| {
        crate::error::Error::Fatal(format!("metrics.listen: cannot listen on {addr}: {e}"))
    })?;
    tracing::info!(%addr, "metrics listener on /metrics");
    std::thread::spawn(move || loop {
        if stop.is_cancelled() {
            return;
        }
        let Ok(Some(req)) = server.recv_timeout(std::time::Duration::from_millis(500)) else {
            continue;
        };
        let ok = req.method() == &tiny_http::Method::Get && req.url() == "/metrics";
        let resp = if ok {
            tiny_http::Response::from_string(render(&store, &counters)).with_header(
                tiny_http::Header::from_bytes(
                    &b"Content-Type"[..],
                    &b"text/plain; version=0.0.4"[..],
                )
                .expect("static header"),
            )
        } else {
            tiny_http::Response::from_string("not found\n").with_status_code(404)
        };
        let _ = req.respond(resp);
    });
    Ok(())
}
