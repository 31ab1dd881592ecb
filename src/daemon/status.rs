//! What `replicator status` shows, built from the checkpoint store. The JSON shape is documented
//! in docs/status.md and stable: fields are added, never renamed.

use crate::state::{Store, TableRecord};
use serde::Serialize;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;

/// The status document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Per table.
    pub tables: Vec<Json>,
    /// The cutover record, once cut over.
    pub cutover: Option<Json>,
    /// About the daemon.
    pub daemon: Json,
}

fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What a daemon says of itself when it answers or publishes status (none: no daemon holds the
/// store, and every state shown is the stored one).
#[derive(Debug, Clone)]
pub struct DaemonView {
    /// Started (Unix ms).
    pub started_ms: i64,
    /// Start-up is over: both sides answered and every table was taken in.
    pub ready: bool,
    /// The tables this run has taken in: their stored state is the daemon's word.
    pub taken_in: BTreeSet<String>,
}

impl DaemonView {
    /// The running daemon's view.
    pub fn of(shared: &super::Shared) -> DaemonView {
        DaemonView {
            started_ms: shared.started_ms,
            ready: *shared.ready.borrow(),
            taken_in: shared.taken_in(),
        }
    }

    /// `running` once start-up is over, `starting` before.
    pub fn label(&self) -> &'static str {
        if self.ready {
            "running"
        } else {
            "starting"
        }
    }
}

/// One table's status entry; `live` when a running daemon has taken the table in (its state is
/// the daemon's word), `starting` when a daemon is starting and has not yet.
fn table_json_as(source: &str, r: &TableRecord, live: bool, starting: bool) -> Json {
    let mut j = table_json(source, r);
    if starting && !live {
        j["state"] = json!("starting");
    }
    j["stored_state"] = json!(r.state.label());
    j["state_from"] = json!(if live { "daemon" } else { "store" });
    j
}

/// One table's status entry.
pub fn table_json(source: &str, r: &TableRecord) -> Json {
    let pct = if r.rows_estimated > 0 {
        ((r.rows_copied as f64 / r.rows_estimated as f64) * 100.0).min(100.0)
    } else if r.rows_copied > 0
        || !matches!(
            r.state,
            crate::state::TableState::Pending | crate::state::TableState::Snapshotting
        )
    {
        100.0
    } else {
        0.0
    };
    let lag_versions = match (
        r.position
            .as_deref()
            .and_then(crate::model::Position::parse),
        r.source_position
            .as_deref()
            .and_then(crate::model::Position::parse),
    ) {
        (Some(a), Some(b)) => a.versions_behind(&b),
        _ => None,
    };
    json!({
        "source": source,
        "target": r.target,
        "state": r.state.label(),
        "change_source": r.change_source,
        "rows_copied": r.rows_copied,
        "rows_estimated": r.rows_estimated,
        "snapshot_percent": (pct * 10.0).round() / 10.0,
        "start_position": r.start_position,
        "position": r.position,
        "lag_seconds": r.lag_seconds,
        "lag_versions": lag_versions,
        "changes_applied": r.changes_applied,
        "last_validation": r.last_validation.as_ref().map(|v| json!({
            "at": ms_to_rfc3339(v.at_ms), "result": v.result, "mode": v.mode,
            "source_rows": v.source_rows, "target_rows": v.target_rows, "findings": v.findings,
        })),
        "last_error": r.last_error.as_ref().map(|e| json!({
            "message": e.message, "hint": e.hint, "at": ms_to_rfc3339(e.at_ms),
        })),
        "lossy_conversions": r.losses.iter().map(|(c, k, n)| json!({"column": c, "kind": k, "count": n})).collect::<Vec<_>>(),
        "updated_at": ms_to_rfc3339(r.updated_ms),
    })
}

/// Builds the status from the store; `daemon` is the running daemon's view of itself (none when
/// no daemon holds the store). A table's `state` is the daemon's word only for a table a running
/// daemon has taken in; while it starts, the others show `starting` (their stored state in
/// `stored_state`), so a script waiting for `streaming` is never answered from a previous run.
pub fn build(store: &Store, daemon: Option<&DaemonView>) -> Result<Status, crate::error::Error> {
    let starting = daemon.is_some_and(|d| !d.ready);
    let tables = store
        .tables()?
        .iter()
        .map(|(k, r)| {
            let live = daemon.is_some_and(|d| d.taken_in.contains(k));
            table_json_as(k, r, live, starting)
        })
        .collect();
    let started_ms = daemon.map(|d| d.started_ms);
    // Stored as JSON text (postcard cannot carry a free-form JSON value).
    let cutover: Option<Json> = store
        .meta::<String>("cutover")?
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(Status {
        tables,
        cutover,
        daemon: json!({
            "running": daemon.is_some(),
            "state": daemon.map_or("stopped", |d| d.label()),
            "started_at": started_ms.map(ms_to_rfc3339),
            "uptime_seconds": started_ms.map(|s| ((crate::state::now_ms() - s) as f64 / 1000.0).round()),
        }),
    })
}

/// Human rendering.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let state = s.daemon["state"].as_str().unwrap_or("stopped");
    out.push_str(&format!(
        "daemon: {}\n",
        match state {
            "running" | "starting" => format!(
                "{state}, up {}s",
                s.daemon["uptime_seconds"].as_f64().unwrap_or(0.0)
            ),
            _ => "not running (states below are the stored ones)".into(),
        }
    ));
    out.push_str(&format!(
        "{:<32} {:<13} {:>12} {:>7} {:>9} {:>10}  {}\n",
        "TABLE", "STATE", "ROWS", "SNAP%", "LAG(s)", "APPLIED", "SOURCE/POSITION"
    ));
    for t in &s.tables {
        out.push_str(&format!(
            "{:<32} {:<13} {:>12} {:>7} {:>9.3} {:>10}  {} {}\n",
            t["source"].as_str().unwrap_or(""),
            t["state"].as_str().unwrap_or(""),
            t["rows_copied"],
            t["snapshot_percent"],
            t["lag_seconds"].as_f64().unwrap_or(0.0),
            t["changes_applied"],
            t["change_source"].as_str().unwrap_or(""),
            t["position"].as_str().unwrap_or("-"),
        ));
        if let Some(e) = t["last_error"].as_object() {
            out.push_str(&format!(
                "    error: {}\n",
                e["message"].as_str().unwrap_or("")
            ));
            if let Some(h) = e["hint"].as_str() {
                out.push_str(&format!("    hint:  {h}\n"));
            }
        }
        for l in t["lossy_conversions"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    lossy: {} {} x{}\n",
                l["column"].as_str().unwrap_or(""),
                l["kind"].as_str().unwrap_or(""),
                l["count"]
            ));
        }
    }
    out
}
