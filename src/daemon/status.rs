//! What `replicator status` shows, built from the checkpoint store. The JSON shape is documented
//! in docs/status.md and stable: fields are added, never renamed.

use crate::state::{Store, TableRecord};
use serde::Serialize;
use serde_json::{json, Value as Json};

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

/// Builds the status from the store. `running` and `started_ms` describe the daemon.
pub fn build(
    store: &Store,
    running: bool,
    started_ms: Option<i64>,
) -> Result<Status, crate::error::Error> {
    let tables = store
        .tables()?
        .iter()
        .map(|(k, r)| table_json(k, r))
        .collect();
    // Stored as JSON text (postcard cannot carry a free-form JSON value).
    let cutover: Option<Json> = store
        .meta::<String>("cutover")?
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(Status {
        tables,
        cutover,
        daemon: json!({
            "running": running,
            "started_at": started_ms.map(ms_to_rfc3339),
            "uptime_seconds": started_ms.map(|s| ((crate::state::now_ms() - s) as f64 / 1000.0).round()),
        }),
    })
}

/// Human rendering.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let running = s.daemon["running"].as_bool().unwrap_or(false);
    out.push_str(&format!(
        "daemon: {}\n",
        if running {
            format!(
                "running, up {}s",
                s.daemon["uptime_seconds"].as_f64().unwrap_or(0.0)
            )
        } else {
            "not running".into()
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
