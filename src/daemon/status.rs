//! What `replicator status` shows, built from the checkpoint store. The JSON shape is documented
//! in docs/status.md and stable: fields are added, never renamed.

use crate::state::{Store, TableRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeSet;

/// The status document (docs/status.md; a test holds the two together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Per table.
    pub tables: Vec<TableStatus>,
    /// The cutover's report, once cut over (its own document).
    pub cutover: Option<Json>,
    /// About the daemon.
    pub daemon: DaemonStatus,
    /// The way back after `cutover --fallback`; null without one.
    #[serde(default)]
    pub fallback: Option<FallbackStatus>,
}

/// The fallback: PostgreSQL's changes flowing back to SQL Server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackStatus {
    /// `postgresql_to_sql_server` while it runs, `rollback_interrupted` when a proven rollback
    /// was interrupted in its release (run `rollback` again), `stopped` once ended.
    pub direction: String,
    /// The replication slot on the target.
    pub slot: String,
    /// The LSN the slot keeps changes from (the cutover's release).
    pub since_lsn: String,
    /// SQL Server holds every transaction up to this LSN.
    pub applied_lsn: Option<String>,
    /// WAL bytes SQL Server does not hold yet.
    pub lag_bytes: i64,
    /// WAL bytes the slot keeps on the target's disk.
    pub retained_bytes: i64,
    /// `retained_bytes` is above `fallback.max_retained_wal`.
    pub retained_over_limit: bool,
    /// Rows written to SQL Server (inserted, updated or deleted).
    pub rows_applied: u64,
    /// Windows applied.
    pub windows: u64,
    /// Why the last window was not applied; null when the last one was.
    pub last_error: Option<ErrorStatus>,
    /// Tables stopped alone (their changes kept on SQL Server until it can take them).
    pub stopped_tables: Vec<StoppedTableStatus>,
    /// When the fallback last recorded its state (RFC 3339).
    pub updated_at: String,
}

/// A table the fallback stopped alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedTableStatus {
    /// SQL Server's `schema.table`.
    pub table: String,
    /// Why (the key, the column, the value's problem).
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// Since when (RFC 3339).
    pub since: String,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    /// `schema.table` at the source.
    pub source: String,
    /// `schema.table` at the target.
    pub target: String,
    /// The state shown (the daemon's word, the stored one, or `starting`; see `state_from`).
    pub state: String,
    /// `change_tracking`, `cdc` or `none`.
    pub change_source: String,
    /// Snapshot rows committed on the target.
    pub rows_copied: i64,
    /// The source's estimate.
    pub rows_estimated: i64,
    /// `rows_copied / rows_estimated`, capped at 100, one decimal.
    pub snapshot_percent: f64,
    /// The position read before the first chunk.
    pub start_position: Option<String>,
    /// Changes are applied up to and including this position.
    pub position: Option<String>,
    /// Seconds from the oldest change of the last window with changes to its commit.
    pub lag_seconds: f64,
    /// Change Tracking versions behind the newest seen (none for CDC).
    pub lag_versions: Option<i64>,
    /// Rows deleted or upserted by windows since the snapshot.
    pub changes_applied: u64,
    /// The last validation.
    pub last_validation: Option<ValidationStatus>,
    /// Why the table stopped, or the last transient error.
    pub last_error: Option<ErrorStatus>,
    /// Values a policy changed, per column and kind.
    pub lossy_conversions: Vec<LossStatus>,
    /// When the record last changed (RFC 3339).
    pub updated_at: String,
    /// The state in the checkpoint store.
    pub stored_state: String,
    /// `daemon` or `store`: whose word `state` is.
    pub state_from: String,
}

/// A table's last validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationStatus {
    /// When (RFC 3339).
    pub at: String,
    /// `equal`, `different`, `repaired` or `skipped`.
    pub result: String,
    /// `sample`, `full` or `cutover delta`.
    pub mode: String,
    /// Rows counted at the source.
    pub source_rows: i64,
    /// Rows counted at the target.
    pub target_rows: i64,
    /// What differed (keys, never values).
    pub findings: Vec<String>,
}

/// A table's last error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorStatus {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// Values a policy changed in one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossStatus {
    /// Target column.
    pub column: String,
    /// `nul_stripped`, `nul_replaced`, `sub_microsecond_truncated`, `lone_surrogate_replaced`.
    pub kind: String,
    /// How many values.
    pub count: u64,
}

/// The daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// A daemon holds the store.
    pub running: bool,
    /// `running`, `starting` or `stopped`.
    pub state: String,
    /// When it started (RFC 3339), while it runs.
    pub started_at: Option<String>,
    /// Seconds since, while it runs.
    pub uptime_seconds: Option<f64>,
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
            started_ms: shared.lifecycle.started_ms,
            ready: shared.lifecycle.is_ready(),
            taken_in: shared.registry.taken_in(),
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
fn table_status(source: &str, r: &TableRecord, live: bool, starting: bool) -> TableStatus {
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
    let lag_versions = match (r.position, r.source_position) {
        (Some(a), Some(b)) => a.versions_behind(&b),
        _ => None,
    };
    TableStatus {
        source: source.to_string(),
        target: r.target.clone(),
        state: if starting && !live {
            "starting".into()
        } else {
            r.state.label().into()
        },
        change_source: r.change_source.as_ref().map_or("", |c| c.label()).into(),
        rows_copied: r.rows_copied,
        rows_estimated: r.rows_estimated,
        snapshot_percent: (pct * 10.0).round() / 10.0,
        start_position: r.start_position.map(|p| p.to_string()),
        position: r.position.map(|p| p.to_string()),
        lag_seconds: r.lag_seconds,
        lag_versions,
        changes_applied: r.changes_applied,
        last_validation: r.last_validation.as_ref().map(|v| ValidationStatus {
            at: ms_to_rfc3339(v.at_ms),
            result: v.result.to_string(),
            mode: v.mode.clone(),
            source_rows: v.source_rows,
            target_rows: v.target_rows,
            findings: v.findings.clone(),
        }),
        last_error: r.last_error.as_ref().map(|e| ErrorStatus {
            message: e.message.clone(),
            hint: e.hint.clone(),
            at: ms_to_rfc3339(e.at_ms),
        }),
        lossy_conversions: r
            .losses
            .iter()
            .map(|(c, k, n)| LossStatus {
                column: c.clone(),
                kind: k.clone(),
                count: *n,
            })
            .collect(),
        updated_at: ms_to_rfc3339(r.updated_ms),
        stored_state: r.state.label().into(),
        state_from: if live { "daemon" } else { "store" }.into(),
    }
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
            table_status(k, r, live, starting)
        })
        .collect();
    let started_ms = daemon.map(|d| d.started_ms);
    // Stored as JSON text (postcard cannot carry a free-form JSON value).
    let cutover: Option<Json> = store
        .meta::<String>("cutover")?
        .and_then(|t| serde_json::from_str(&t).ok());
    let fallback = store.fallback()?.map(|f| FallbackStatus {
        direction: match (f.active, f.releasing) {
            (true, true) => "rollback_interrupted",
            (true, false) => "postgresql_to_sql_server",
            (false, _) => "stopped",
        }
        .into(),
        slot: f.slot,
        since_lsn: f.since_lsn,
        applied_lsn: f.applied_lsn,
        lag_bytes: f.lag_bytes,
        retained_bytes: f.retained_bytes,
        retained_over_limit: f.retained_over_limit,
        rows_applied: f.rows_applied,
        windows: f.windows,
        last_error: f.last_error.map(|e| ErrorStatus {
            message: e.message,
            hint: e.hint,
            at: ms_to_rfc3339(e.at_ms),
        }),
        stopped_tables: f
            .stopped_tables
            .into_iter()
            .map(|t| StoppedTableStatus {
                table: t.table,
                message: t.message,
                hint: t.hint,
                since: ms_to_rfc3339(t.since_ms),
            })
            .collect(),
        updated_at: ms_to_rfc3339(f.updated_ms.max(f.started_ms)),
    });
    Ok(Status {
        fallback,
        tables,
        cutover,
        daemon: DaemonStatus {
            running: daemon.is_some(),
            state: daemon.map_or("stopped", |d| d.label()).into(),
            started_at: started_ms.map(ms_to_rfc3339),
            uptime_seconds: started_ms
                .map(|s| ((crate::state::now_ms() - s) as f64 / 1000.0).round()),
        },
    })
}

/// Human rendering.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let state = s.daemon.state.as_str();
    out.push_str(&format!(
        "daemon: {}\n",
        match state {
            "running" | "starting" =>
                format!("{state}, up {}s", s.daemon.uptime_seconds.unwrap_or(0.0)),
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
            t.source,
            t.state,
            t.rows_copied,
            t.snapshot_percent,
            t.lag_seconds,
            t.changes_applied,
            t.change_source,
            t.position.as_deref().unwrap_or("-"),
        ));
        if let Some(e) = &t.last_error {
            out.push_str(&format!("    error: {}\n", e.message));
            if let Some(h) = &e.hint {
                out.push_str(&format!("    hint:  {h}\n"));
            }
        }
        for l in &t.lossy_conversions {
            out.push_str(&format!(
                "    lossy: {} {} x{}\n",
                l.column, l.kind, l.count
            ));
        }
    }
    if let Some(f) = &s.fallback {
        out.push_str(&format!(
            "fallback: {} (slot {}), applied to {}, lag {} bytes, retained WAL {} bytes{}, {} rows in {} windows\n",
            f.direction,
            f.slot,
            f.applied_lsn.as_deref().unwrap_or(&f.since_lsn),
            f.lag_bytes,
            f.retained_bytes,
            if f.retained_over_limit { " (over fallback.max_retained_wal: it fills the target's disk)" } else { "" },
            f.rows_applied,
            f.windows
        ));
        for t in &f.stopped_tables {
            out.push_str(&format!("    stopped: {}: {}\n", t.table, t.message));
            if let Some(h) = &t.hint {
                out.push_str(&format!("    hint:  {h}\n"));
            }
        }
        if let Some(e) = &f.last_error {
            out.push_str(&format!("    error: {}\n", e.message));
            if let Some(h) = &e.hint {
                out.push_str(&format!("    hint:  {h}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ErrorRecord, TableState, ValidationRecord};
    use std::collections::BTreeSet;

    fn doc() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status.md"))
            .expect("docs/status.md")
    }

    fn keys(v: &Json) -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `{a, b, c}` a row of the field table gives for `field`.
    fn documented_members(doc: &str, field: &str) -> BTreeSet<String> {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{field}` |")))
            .unwrap_or_else(|| panic!("docs/status.md has no row for {field}"));
        let inner = row.split("`{").nth(1).and_then(|r| r.split("}`").next());
        inner
            .unwrap_or_else(|| panic!("the row for {field} lists no members"))
            .split(',')
            .map(|k| k.trim().to_string())
            .collect()
    }

    #[test]
    fn the_documented_example_is_what_status_writes() {
        let doc = doc();
        let example = doc
            .split("```json")
            .nth(1)
            .and_then(|r| r.split("```").next())
            .expect("a json example");
        let documented: Json = serde_json::from_str(example).expect("the example is JSON");
        // The example reads as a status and writes back the same document.
        let parsed: Status = serde_json::from_value(documented.clone()).expect("reads as Status");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), documented);

        // What the daemon writes for a table with every member set has the example's fields,
        // and its nested members are the ones the field table lists.
        let dir = std::env::temp_dir().join(format!("replicator-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        store
            .update("dbo.orders", |_| {
                let mut r = TableRecord::new(
                    "public.orders".into(),
                    Some(crate::model::ChangeSource::ChangeTracking),
                    10,
                );
                r.state = TableState::Errored;
                r.losses = vec![("created".into(), "nul_stripped".into(), 2)];
                r.last_error = Some(ErrorRecord {
                    message: "m".into(),
                    hint: Some("h".into()),
                    at_ms: 1,
                });
                r.last_validation = Some(ValidationRecord {
                    at_ms: 1,
                    result: crate::model::Verdict::Equal,
                    mode: "full".into(),
                    findings: vec![],
                    source_rows: 1,
                    target_rows: 1,
                });
                r
            })
            .unwrap();
        let view = DaemonView {
            started_ms: 1,
            ready: true,
            taken_in: ["dbo.orders".to_string()].into(),
        };
        let written = serde_json::to_value(build(&store, Some(&view)).unwrap()).unwrap();
        assert_eq!(keys(&written), keys(&documented));
        assert_eq!(keys(&written["daemon"]), keys(&documented["daemon"]));
        let (t, d) = (&written["tables"][0], &documented["tables"][0]);
        assert_eq!(keys(t), keys(d));
        assert_eq!(
            keys(&t["lossy_conversions"][0]),
            keys(&d["lossy_conversions"][0])
        );
        assert_eq!(
            keys(&t["last_validation"]),
            documented_members(&doc, "last_validation")
        );
        assert_eq!(
            keys(&t["last_error"]),
            documented_members(&doc, "last_error")
        );
        // Every field of a table has its row in the field table.
        for k in keys(t) {
            let listed = doc.lines().any(|l| {
                l.starts_with('|')
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|c| c.contains(&format!("`{k}`")))
            });
            assert!(listed, "docs/status.md does not describe `{k}`");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
