//! The cutover report: what was proven when, what ran inside the write window, and how long
//! each part of the window took.

use super::fence;
use serde::Serialize;

/// One table's result.
#[derive(Debug, Clone, Serialize)]
pub struct TableResult {
    /// Source table.
    pub source: String,
    /// Target table.
    pub target: String,
    /// Rows at the source (counted inside the window).
    pub source_rows: i64,
    /// Rows on the target (counted inside the window).
    pub target_rows: i64,
    /// `equal` or `different`.
    pub result: crate::model::Verdict,
    /// What ran inside the window: `delta` (the keys changed since the proof, value by value,
    /// and both row counts) or `full` (every row).
    pub check: String,
    /// Why every row was compared inside the window (`check` = `full`).
    pub why_full: Option<String>,
    /// The equality proof the delta check built on (`check` = `delta`).
    pub proof: Option<ProofSummary>,
    /// Keys compared value by value inside the window (`delta`), or rows per side (`full`).
    pub keys_checked: i64,
    /// Identity set to continue after this value, when the table has one.
    pub identity_synced_to: Option<i64>,
    /// Checksums were computed by both databases (only differing buckets were read).
    pub checked_in_database: bool,
    /// Rows the comparison read into the replicator, both sides together.
    pub rows_read: i64,
    /// Seconds this table's check took inside the window.
    pub seconds: f64,
}

/// A proof of equality as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProofSummary {
    /// When its full validation began (RFC 3339).
    pub validated_at: String,
    /// The position it was made at (P1).
    pub position: String,
    /// Rows it compared.
    pub rows: i64,
    /// `full` or `full, in database`.
    pub mode: String,
}

/// The window's parts, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Parts {
    /// Raising the source fence (`--fence-source`).
    pub fence: f64,
    /// Draining the last changes.
    pub drain: f64,
    /// Comparing the keys changed since each table's proof.
    pub delta_check: f64,
    /// Comparing every row of the tables without a usable proof.
    pub full_check: f64,
    /// Counting both sides' rows (delta-checked tables).
    pub counts: f64,
    /// Setting identities.
    pub identities: f64,
    /// Creating and validating foreign keys.
    pub foreign_keys: f64,
    /// Removing the fence again after a failure.
    pub unfence: f64,
    /// Marking tables cut over, removing guards and the progress schema.
    pub release: f64,
}

/// The cutover report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// All tables equal, foreign keys valid: the target is ready.
    pub ok: bool,
    /// Seconds the application could not write: from raising the source fence (or, without
    /// `--fence-source`, from the moment the replicator stopped applying) to the end.
    pub downtime_seconds: f64,
    /// The window's parts.
    pub parts: Parts,
    /// Seconds the whole command took, the proofs before the window included.
    pub command_seconds: f64,
    /// Seconds spent proving equality before the window (full validations run by cutover).
    pub prove_seconds: f64,
    /// Per table.
    pub tables: Vec<TableResult>,
    /// Foreign keys validated before the window (while the application still wrote).
    pub foreign_keys_validated_before: usize,
    /// Foreign keys created or validated inside the window.
    pub foreign_keys_validated: usize,
    /// Sequences set after the source's last value inside the window: (target, value).
    pub sequences_synced: Vec<(String, i64)>,
    /// Views created on the target after the window (translated from the source's).
    pub views_created: Vec<String>,
    /// Notes on what ran where and why.
    pub notes: Vec<String>,
    /// Problems, each naming its table.
    pub problems: Vec<String>,
    /// The source write fence, with `--fence-source`.
    pub fence: Option<fence::Fence>,
    /// With `--fallback`: the slot that keeps PostgreSQL's changes for SQL Server, and the LSN
    /// it keeps them from.
    #[serde(default)]
    pub fallback: Option<FallbackStart>,
    /// When it finished (RFC 3339).
    pub finished_at: String,
}

/// Where the fallback starts.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FallbackStart {
    /// The replication slot.
    pub slot: String,
    /// The LSN it keeps changes from.
    pub since_lsn: String,
}

impl Report {
    /// Human rendering.
    pub fn render(&self) -> String {
        let p = &self.parts;
        let mut out = format!(
            "cutover {}: downtime {:.2} s (fence {:.2}, drain {:.2}, delta check {:.2}, counts {:.2}, full check {:.2}, identities {:.2}, foreign keys {:.2}, release {:.2}{})\n",
            if self.ok { "complete" } else { "FAILED" },
            self.downtime_seconds,
            p.fence,
            p.drain,
            p.delta_check,
            p.counts,
            p.full_check,
            p.identities,
            p.foreign_keys,
            p.release,
            if p.unfence > 0.0 { format!(", unfence {:.2}", p.unfence) } else { String::new() },
        );
        out.push_str(&format!(
            "command {:.2} s, of which proving equality before the window {:.2} s; foreign keys validated: {} before the window, {} inside it\n",
            self.command_seconds, self.prove_seconds, self.foreign_keys_validated_before, self.foreign_keys_validated
        ));
        if !self.views_created.is_empty() {
            out.push_str(&format!(
                "views created: {}\n",
                self.views_created.join(", ")
            ));
        }
        for (seq, value) in &self.sequences_synced {
            out.push_str(&format!("sequence {seq} continues after {value}\n"));
        }
        out.push_str(&format!(
            "{:<30} {:<30} {:>11} {:>11}  {:<9} {:<6} {:>9}  {:<8} {}\n",
            "SOURCE",
            "TARGET",
            "SOURCE ROWS",
            "TARGET ROWS",
            "RESULT",
            "CHECK",
            "KEYS",
            "IDENTITY",
            "PROOF"
        ));
        for t in &self.tables {
            let proof = match (&t.proof, &t.why_full) {
                (Some(pr), _) => format!(
                    "{} at {} ({} rows, {})",
                    pr.validated_at, pr.position, pr.rows, pr.mode
                ),
                (None, Some(why)) => format!("none: {why}"),
                (None, None) => "-".into(),
            };
            out.push_str(&format!(
                "{:<30} {:<30} {:>11} {:>11}  {:<9} {:<6} {:>9}  {:<8} {}\n",
                t.source,
                t.target,
                t.source_rows,
                t.target_rows,
                t.result,
                t.check,
                t.keys_checked,
                t.identity_synced_to
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                proof
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        if let Some(f) = &self.fallback {
            out.push_str(&format!(
                "fallback: slot {} keeps PostgreSQL's changes from {}; `replicator run` carries them to SQL Server until `replicator fallback stop`\n",
                f.slot, f.since_lsn
            ));
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
