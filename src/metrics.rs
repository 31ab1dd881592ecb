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

/// 1 while PostgreSQL's changes flow back to SQL Server (`cutover --fallback`), 0 after.
pub const FALLBACK_ACTIVE: &str = "replicator_fallback_active";
/// WAL bytes SQL Server does not hold yet.
pub const FALLBACK_LAG_BYTES: &str = "replicator_fallback_lag_bytes";
/// WAL bytes the fallback's slot keeps on the target's disk.
pub const FALLBACK_RETAINED_BYTES: &str = "replicator_fallback_retained_bytes";
/// 1 when the retained WAL is above `fallback.max_retained_wal`.
pub const FALLBACK_RETAINED_OVER_LIMIT: &str = "replicator_fallback_retained_over_limit";
/// Rows written to SQL Server by the fallback.
pub const FALLBACK_ROWS: &str = "replicator_fallback_rows_applied_total";
/// 1 while the fallback's last window was refused (status says why).
pub const FALLBACK_ERRORED: &str = "replicator_fallback_errored";
/// Tables the fallback stopped alone (their changes kept on SQL Server; status says why).
pub const FALLBACK_STOPPED_TABLES: &str = "replicator_fallback_stopped_tables";

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
    if let Ok(Some(f)) = store.fallback() {
        let gauges: [(&str, &str, &str, f64); 7] = [
            (
                FALLBACK_ACTIVE,
                "gauge",
                "1 while changes flow back to SQL Server",
                f.active as u8 as f64,
            ),
            (
                FALLBACK_LAG_BYTES,
                "gauge",
                "WAL bytes SQL Server does not hold yet",
                f.lag_bytes as f64,
            ),
            (
                FALLBACK_RETAINED_BYTES,
                "gauge",
                "WAL bytes the fallback's slot keeps",
                f.retained_bytes as f64,
            ),
            (
                FALLBACK_RETAINED_OVER_LIMIT,
                "gauge",
                "1 above fallback.max_retained_wal",
                f.retained_over_limit as u8 as f64,
            ),
            (
                FALLBACK_ROWS,
                "counter",
                "rows written to SQL Server by the fallback",
                f.rows_applied as f64,
            ),
            (
                FALLBACK_ERRORED,
                "gauge",
                "1 while the last window was refused",
                f.last_error.is_some() as u8 as f64,
            ),
            (
                FALLBACK_STOPPED_TABLES,
                "gauge",
                "tables stopped alone, their changes kept on SQL Server",
                f.stopped_tables.len() as f64,
            ),
        ];
        for (name, kind, help, v) in gauges {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_is_rendered_once_there_is_one() {
        let dir = std::env::temp_dir().join(format!("replicator-metrics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let counters = Counters::default();
        assert!(!render(&store, &counters).contains(FALLBACK_ACTIVE));
        store
            .set_fallback(&crate::state::FallbackRecord {
                slot: "s".into(),
                active: true,
                lag_bytes: 120,
                retained_bytes: 4096,
                rows_applied: 7,
                stopped_tables: vec![Default::default()],
                ..Default::default()
            })
            .unwrap();
        let text = render(&store, &counters);
        for line in [
            "replicator_fallback_active 1",
            "replicator_fallback_lag_bytes 120",
            "replicator_fallback_retained_bytes 4096",
            "replicator_fallback_retained_over_limit 0",
            "replicator_fallback_rows_applied_total 7",
            "replicator_fallback_errored 0",
            "replicator_fallback_stopped_tables 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
