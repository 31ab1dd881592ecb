//! Version 1 of the table record (releases up to the one that typed it): positions, the change
//! source and the validation verdict were text. Read only, to upgrade a store such a release
//! wrote; the layout here must never change (postcard is not self-describing).

use super::{ErrorRecord, TableState, ValidationRecord};
use crate::model::{ChangeSource, Position, Verdict};
use serde::Deserialize;

/// A version 1 table record, field for field.
#[derive(Deserialize)]
pub(super) struct TableRecord {
    target: String,
    state: TableState,
    change_source: String,
    rows_copied: i64,
    rows_estimated: i64,
    start_position: Option<String>,
    position: Option<String>,
    source_position: Option<String>,
    lag_seconds: f64,
    changes_applied: u64,
    last_error: Option<ErrorRecord>,
    last_validation: Option<Validation>,
    losses: Vec<(String, String, u64)>,
    snapshot_started_ms: Option<i64>,
    updated_ms: i64,
}

/// A version 1 validation record, field for field.
#[derive(Deserialize)]
struct Validation {
    at_ms: i64,
    result: String,
    mode: String,
    findings: Vec<String>,
    source_rows: i64,
    target_rows: i64,
}

impl TableRecord {
    /// The same record, typed. A position that does not parse is dropped (the target's progress
    /// tables, which win on start-up, hold the committed one); a CDC table's capture instance,
    /// which version 1 did not keep, is empty until the next start-up decides it; an unknown
    /// verdict reads as `skipped`.
    pub(super) fn upgrade(self) -> super::TableRecord {
        let position = |p: Option<String>| p.as_deref().and_then(Position::parse);
        super::TableRecord {
            target: self.target,
            state: self.state,
            change_source: match self.change_source.as_str() {
                "change_tracking" => Some(ChangeSource::ChangeTracking),
                "cdc" => Some(ChangeSource::Cdc(String::new())),
                "none" => Some(ChangeSource::CopiedOnce),
                _ => None,
            },
            rows_copied: self.rows_copied,
            rows_estimated: self.rows_estimated,
            start_position: position(self.start_position),
            position: position(self.position),
            source_position: position(self.source_position),
            lag_seconds: self.lag_seconds,
            changes_applied: self.changes_applied,
            last_error: self.last_error,
            last_validation: self.last_validation.map(|v| ValidationRecord {
                at_ms: v.at_ms,
                result: match v.result.as_str() {
                    "equal" => Verdict::Equal,
                    "different" => Verdict::Different,
                    "repaired" => Verdict::Repaired,
                    _ => Verdict::Skipped,
                },
                mode: v.mode,
                findings: v.findings,
                source_rows: v.source_rows,
                target_rows: v.target_rows,
            }),
            losses: self.losses,
            snapshot_started_ms: self.snapshot_started_ms,
            updated_ms: self.updated_ms,
        }
    }
}
