//! The embedded checkpoint store (redb): per-table lifecycle, positions, counters, last error and
//! validation, the audit journal and the cutover record. Records are postcard with a version tag.
//!
//! Contract: every write is one redb transaction (crash-safe); a table's position in here never
//! moves backwards ([`Store::advance_position`]); the target's progress tables win on start-up.

use crate::error::Error;
use crate::model::{ChangeSource, Position, Verdict};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

const TABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("tables");
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// The version tag of journal entries and meta values (their layout has not changed).
const RECORD_VERSION: u8 = 1;
/// The version tag of [`TableRecord`]s: 2 holds positions, the change source and the verdict
/// typed; 1 held them as text ([`v1`] reads it and [`Store::open`] upgrades it).
const TABLE_RECORD_VERSION: u8 = 2;

mod v1;

/// Where a table is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableState {
    /// Selected, nothing copied yet.
    Pending,
    /// The snapshot is running.
    Snapshotting,
    /// Snapshot done; applying the changes made meanwhile.
    CatchingUp,
    /// Applying changes as they come.
    Streaming,
    /// Cut over; no longer replicated.
    CutOver,
    /// Stopped with a reason and a hint.
    Errored,
}

impl TableState {
    /// The name `status` prints.
    pub fn label(&self) -> &'static str {
        match self {
            TableState::Pending => "pending",
            TableState::Snapshotting => "snapshotting",
            TableState::CatchingUp => "catching_up",
            TableState::Streaming => "streaming",
            TableState::CutOver => "cut_over",
            TableState::Errored => "errored",
        }
    }
}

/// An error as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// The meta key of the fallback's record ([`FallbackRecord`], JSON).
pub const FALLBACK_META: &str = "fallback";

/// The fallback after a `cutover --fallback`: PostgreSQL's changes flowing back to SQL Server.
/// Written by the fallback's loop after every window; read by `status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FallbackRecord {
    /// The logical replication slot on the target.
    pub slot: String,
    /// The LSN the slot keeps changes from (cutover's release).
    pub since_lsn: String,
    /// When the cutover created it (Unix ms).
    pub started_ms: i64,
    /// Changes flow back; false once `fallback stop` or `rollback` ended it.
    pub active: bool,
    /// The end of the last transaction SQL Server holds.
    pub applied_lsn: Option<String>,
    /// WAL bytes between PostgreSQL's current position and what SQL Server holds.
    pub lag_bytes: i64,
    /// WAL bytes the slot keeps PostgreSQL from recycling.
    pub retained_bytes: i64,
    /// `retained_bytes` is above `fallback.max_retained_wal`.
    pub retained_over_limit: bool,
    /// Rows written to SQL Server (inserted, updated or deleted), in total.
    pub rows_applied: u64,
    /// Windows applied, in total.
    pub windows: u64,
    /// Why the last window could not be applied (cleared by the next one that is).
    pub last_error: Option<ErrorRecord>,
    /// When this record was written (Unix ms).
    pub updated_ms: i64,
    /// Columns added on PostgreSQL whose values SQL Server has not received yet: (target
    /// `schema.table`, column). Recorded before the column is added on SQL Server and cleared
    /// after its backfill commits, so a crash in between backfills it at the next start.
    pub pending_backfills: Vec<(String, String)>,
    /// Tables whose changes SQL Server cannot take yet (kept aside on SQL Server until it can),
    /// each with why; the other tables' changes go on.
    pub stopped_tables: Vec<StoppedTable>,
    /// A rollback proved every table and began releasing SQL Server (its fence lowered,
    /// identities set, the slot dropped): set before the release, cleared with `active`. Found
    /// set, the release is finished by `rollback` (PostgreSQL stays fenced meanwhile).
    pub releasing: bool,
    /// When that rollback fenced PostgreSQL (Unix ms), set with `releasing`: the downtime of a
    /// release finished by a later `rollback` counts from it.
    pub fenced_ms: Option<i64>,
}

/// A table the fallback stopped alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoppedTable {
    /// SQL Server's `schema.table`.
    pub table: String,
    /// Why: the key, the column and the value's problem.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// Since when (Unix ms).
    pub since_ms: i64,
}

impl Store {
    /// The fallback's record, if a cutover made one.
    pub fn fallback(&self) -> Result<Option<FallbackRecord>, Error> {
        self
            .meta::<String>(FALLBACK_META)?
            .map(|s| {
                serde_json::from_str(&s).map_err(|e| {
                    Error::Fatal(format!(
                        "the state store's fallback record cannot be read ({e}); nothing was changed; hint: a newer replicator wrote it, or the store is damaged"
                    ))
                })
            })
            .transpose()
    }

    /// Writes the fallback's record.
    pub fn set_fallback(&self, r: &FallbackRecord) -> Result<(), Error> {
        self.set_meta(FALLBACK_META, &serde_json::to_string(r).unwrap_or_default())
    }
}

/// The last validation of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// When (Unix ms).
    pub at_ms: i64,
    /// The outcome.
    pub result: Verdict,
    /// Mode: `counts+sample` or `full`.
    pub mode: String,
    /// Findings (key and what differs), at most a few.
    pub findings: Vec<String>,
    /// Rows on each side.
    pub source_rows: i64,
    /// Rows on the target.
    pub target_rows: i64,
}

/// Everything status needs about one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    /// Target `schema.table`.
    pub target: String,
    /// Lifecycle state.
    pub state: TableState,
    /// Where its changes come from (none: not decided yet, e.g. a record made by a validation).
    pub change_source: Option<ChangeSource>,
    /// Rows copied by the snapshot.
    pub rows_copied: i64,
    /// Estimated rows at the source.
    pub rows_estimated: i64,
    /// Position read before the snapshot.
    pub start_position: Option<Position>,
    /// Changes applied up to here.
    pub position: Option<Position>,
    /// Source's newest position when last looked.
    pub source_position: Option<Position>,
    /// Seconds between the newest applied source commit and its apply.
    pub lag_seconds: f64,
    /// Changes applied since the snapshot.
    pub changes_applied: u64,
    /// The last error (cleared when the table recovers).
    pub last_error: Option<ErrorRecord>,
    /// The last validation.
    pub last_validation: Option<ValidationRecord>,
    /// Lossy conversions: (column, kind, count).
    pub losses: Vec<(String, String, u64)>,
    /// Snapshot started (Unix ms).
    pub snapshot_started_ms: Option<i64>,
    /// Last update (Unix ms).
    pub updated_ms: i64,
}

impl TableRecord {
    /// A fresh record for a newly selected table.
    pub fn new(
        target: String,
        change_source: Option<ChangeSource>,
        rows_estimated: i64,
    ) -> TableRecord {
        TableRecord {
            target,
            state: TableState::Pending,
            change_source,
            rows_copied: 0,
            rows_estimated,
            start_position: None,
            position: None,
            source_position: None,
            lag_seconds: 0.0,
            changes_applied: 0,
            last_error: None,
            last_validation: None,
            losses: Vec::new(),
            snapshot_started_ms: None,
            updated_ms: now_ms(),
        }
    }
}

impl TableRecord {
    /// A record for a table known only by name so far (a validation of a table the daemon has
    /// not taken in): no target, no change source.
    pub fn unknown() -> TableRecord {
        TableRecord::new(String::new(), None, 0)
    }

    /// Moves the applied position forward; never backwards (an older one is ignored).
    pub fn advance(&mut self, position: Position) {
        if !self.position.is_some_and(|p| p > position) {
            self.position = Some(position);
        }
    }
}

/// An audit journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Event kind (`snapshot_started`, `resnapshot`, `error`, `cutover`...).
    pub event: String,
    /// Source table, when it concerns one.
    pub table: Option<String>,
    /// Human detail.
    pub detail: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn encode_as<T: Serialize>(version: u8, v: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![version];
    out.extend(postcard::to_stdvec(v).map_err(|e| Error::State(format!("encode: {e}")))?);
    Ok(out)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    encode_as(RECORD_VERSION, v)
}

fn encode_table(rec: &TableRecord) -> Result<Vec<u8>, Error> {
    encode_as(TABLE_RECORD_VERSION, rec)
}

fn payload<'a>(b: &'a [u8], reads: &[u8]) -> Result<(u8, &'a [u8]), Error> {
    match b.split_first() {
        Some((v, rest)) if reads.contains(v) => Ok((*v, rest)),
        Some((v, _)) => Err(Error::State(format!(
            "record version {v} is not one this build reads ({reads:?}); use the replicator version that wrote it"
        ))),
        None => Err(Error::State("empty record".into())),
    }
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    let (_, rest) = payload(b, &[RECORD_VERSION])?;
    postcard::from_bytes(rest).map_err(|e| Error::State(format!("decode: {e}")))
}

/// A table record of either version (a version 1 record is upgraded on the way).
fn decode_table(b: &[u8]) -> Result<TableRecord, Error> {
    match payload(b, &[1, TABLE_RECORD_VERSION])? {
        (1, rest) => postcard::from_bytes::<v1::TableRecord>(rest)
            .map(v1::TableRecord::upgrade)
            .map_err(|e| Error::State(format!("decode a version 1 table record: {e}"))),
        (_, rest) => postcard::from_bytes(rest).map_err(|e| Error::State(format!("decode: {e}"))),
    }
}

fn st<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::State(format!("{what}: {e}"))
}

/// The store (cheap to clone: clones share the one open database).
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Database>,
}

/// One table a committed window moved: its new position, and the rest of its record's changes.
pub type WindowUpdate = (String, Position, Box<dyn FnOnce(&mut TableRecord) + Send>);

impl Store {
    /// Opens (creating the directory and file if missing). Fails while another process holds it.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::State(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("replicator.redb");
        let db = Database::create(&path)
            .map_err(|e| Error::State(format!("cannot open {}: {e}", path.display())))?;
        let w = db.begin_write().map_err(st("begin"))?;
        {
            w.open_table(TABLES).map_err(st("open tables"))?;
            w.open_table(JOURNAL).map_err(st("open journal"))?;
            w.open_table(META).map_err(st("open meta"))?;
        }
        w.commit().map_err(st("commit"))?;
        let store = Store {
            db: std::sync::Arc::new(db),
        };
        store.upgrade()?;
        Ok(store)
    }

    /// Rewrites every table record of an older version in the current one, in one transaction
    /// (idempotent; nothing to do in a store this version wrote).
    fn upgrade(&self) -> Result<(), Error> {
        let w = self.db.begin_write().map_err(st("begin"))?;
        let mut upgraded = 0;
        {
            let mut t = w.open_table(TABLES).map_err(st("open tables"))?;
            let mut old = Vec::new();
            for item in t.iter().map_err(st("iterate"))? {
                let (k, v) = item.map_err(st("read"))?;
                if v.value().first() != Some(&TABLE_RECORD_VERSION) {
                    let name = k.value().to_string();
                    let rec = decode_table(v.value()).map_err(|e| {
                        Error::State(format!("upgrade the stored record of table {name}: {e}"))
                    })?;
                    old.push((name, rec));
                }
            }
            for (name, rec) in old {
                t.insert(name.as_str(), encode_table(&rec)?.as_slice())
                    .map_err(st("write"))?;
                upgraded += 1;
            }
        }
        w.commit().map_err(st("commit"))?;
        if upgraded > 0 {
            tracing::info!(
                tables = upgraded,
                version = TABLE_RECORD_VERSION,
                "upgraded the checkpoint store's table records"
            );
        }
        Ok(())
    }

    /// All table records, by source name.
    pub fn tables(&self) -> Result<Vec<(String, TableRecord)>, Error> {
        let r = self.db.begin_read().map_err(st("begin read"))?;
        let t = r.open_table(TABLES).map_err(st("open tables"))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(st("iterate"))? {
            let (k, v) = item.map_err(st("read"))?;
            out.push((k.value().to_string(), decode_table(v.value())?));
        }
        Ok(out)
    }

    /// One table's record.
    pub fn table(&self, source: &str) -> Result<Option<TableRecord>, Error> {
        let r = self.db.begin_read().map_err(st("begin read"))?;
        let t = r.open_table(TABLES).map_err(st("open tables"))?;
        let v = t.get(source).map_err(st("read"))?;
        v.map(|v| decode_table(v.value())).transpose()
    }

    /// Records a table's last validation (shown by `status`); a table not seen before gets a
    /// record with only that.
    pub fn record_validation(&self, source: &str, rec: ValidationRecord) -> Result<(), Error> {
        self.update(source, |old| {
            let mut t = old.unwrap_or_else(TableRecord::unknown);
            t.last_validation = Some(rec);
            t
        })?;
        Ok(())
    }

    /// Reads, changes and writes one table's record in one transaction. `f` gets `None` for a
    /// table not seen before and returns the record to store.
    pub fn update(
        &self,
        source: &str,
        f: impl FnOnce(Option<TableRecord>) -> TableRecord,
    ) -> Result<TableRecord, Error> {
        let w = self.db.begin_write().map_err(st("begin"))?;
        let rec = {
            let mut t = w.open_table(TABLES).map_err(st("open tables"))?;
            let old = t
                .get(source)
                .map_err(st("read"))?
                .map(|v| decode_table(v.value()))
                .transpose()?;
            let mut rec = f(old);
            rec.updated_ms = now_ms();
            t.insert(source, encode_table(&rec)?.as_slice())
                .map_err(st("write"))?;
            rec
        };
        w.commit().map_err(st("commit"))?;
        Ok(rec)
    }

    /// Advances a table's applied position; a position older than the stored one is ignored.
    pub fn advance_position(
        &self,
        source: &str,
        position: &Position,
        f: impl FnOnce(&mut TableRecord),
    ) -> Result<(), Error> {
        self.update(source, |old| {
            let mut rec = old.unwrap_or_else(TableRecord::unknown);
            rec.advance(*position);
            f(&mut rec);
            rec
        })?;
        Ok(())
    }

    /// Follows a committed window in one store transaction (one fsync per window, whatever the
    /// number of tables): each updated table's position advances (never backwards) and its
    /// record changes; a table in `updates` or `caught_up` that was catching up is streaming from
    /// now on. Returns the tables that started streaming. Blocking: call it off the async
    /// workers.
    pub fn advance_window(
        &self,
        updates: Vec<WindowUpdate>,
        caught_up: &[String],
    ) -> Result<Vec<String>, Error> {
        let w = self.db.begin_write().map_err(st("begin"))?;
        let mut streaming = Vec::new();
        {
            let mut t = w.open_table(TABLES).map_err(st("open tables"))?;
            let read =
                |t: &redb::Table<&str, &[u8]>, name: &str| -> Result<Option<TableRecord>, Error> {
                    t.get(name)
                        .map_err(st("read"))?
                        .map(|v| decode_table(v.value()))
                        .transpose()
                };
            let mut to_stream = |rec: &mut TableRecord, name: &str| {
                if rec.state == TableState::CatchingUp {
                    rec.state = TableState::Streaming;
                    rec.last_error = None;
                    streaming.push(name.to_string());
                }
            };
            let mut done: Vec<String> = Vec::new();
            for (name, position, f) in updates {
                let mut rec = read(&t, &name)?.unwrap_or_else(TableRecord::unknown);
                rec.advance(position);
                f(&mut rec);
                to_stream(&mut rec, &name);
                rec.updated_ms = now_ms();
                t.insert(name.as_str(), encode_table(&rec)?.as_slice())
                    .map_err(st("write"))?;
                done.push(name);
            }
            for name in caught_up.iter().filter(|n| !done.contains(n)) {
                let Some(mut rec) = read(&t, name)? else {
                    continue;
                };
                if rec.state == TableState::CatchingUp {
                    to_stream(&mut rec, name);
                    rec.updated_ms = now_ms();
                    t.insert(name.as_str(), encode_table(&rec)?.as_slice())
                        .map_err(st("write"))?;
                }
            }
        }
        w.commit().map_err(st("commit"))?;
        Ok(streaming)
    }

    /// Appends to the audit journal.
    pub fn journal(
        &self,
        event: &str,
        table: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<(), Error> {
        let entry = JournalEntry {
            at_ms: now_ms(),
            event: event.into(),
            table: table.map(str::to_string),
            detail: detail.into(),
        };
        let w = self.db.begin_write().map_err(st("begin"))?;
        {
            let mut t = w.open_table(JOURNAL).map_err(st("open journal"))?;
            let next = t
                .last()
                .map_err(st("read"))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1);
            t.insert(next, encode(&entry)?.as_slice())
                .map_err(st("write"))?;
        }
        w.commit().map_err(st("commit"))
    }

    /// The journal, oldest first.
    pub fn history(&self) -> Result<Vec<JournalEntry>, Error> {
        let r = self.db.begin_read().map_err(st("begin read"))?;
        let t = r.open_table(JOURNAL).map_err(st("open journal"))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(st("iterate"))? {
            let (_, v) = item.map_err(st("read"))?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// A small named value (cutover record, start time).
    pub fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let r = self.db.begin_read().map_err(st("begin read"))?;
        let t = r.open_table(META).map_err(st("open meta"))?;
        let v = t.get(key).map_err(st("read"))?;
        v.map(|v| decode(v.value())).transpose()
    }

    /// Sets a named value.
    pub fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let w = self.db.begin_write().map_err(st("begin"))?;
        {
            let mut t = w.open_table(META).map_err(st("open meta"))?;
            t.insert(key, encode(value)?.as_slice())
                .map_err(st("write"))?;
        }
        w.commit().map_err(st("commit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lsn;

    #[test]
    fn records_survive_reopen_and_positions_never_move_back() {
        let dir = std::env::temp_dir().join(format!("replicator-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).expect("open");
            s.update("dbo.t", |_| {
                TableRecord::new("public.t".into(), Some(ChangeSource::ChangeTracking), 10)
            })
            .unwrap();
            s.advance_position("dbo.t", &Position::Ct(10), |_| {})
                .unwrap();
            s.advance_position("dbo.t", &Position::Ct(7), |_| {})
                .unwrap();
            s.journal("snapshot_started", Some("dbo.t"), "x").unwrap();
            s.journal("snapshot_finished", Some("dbo.t"), "y").unwrap();
        }
        let s = Store::open(&dir).expect("reopen");
        let rec = s.table("dbo.t").unwrap().expect("record");
        assert_eq!(rec.position, Some(Position::Ct(10)));
        assert_eq!(rec.target, "public.t");
        let h = s.history().unwrap();
        assert_eq!(
            h.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
            ["snapshot_started", "snapshot_finished"]
        );
        assert!(decode_table(&[9, 1, 2])
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_window_advances_every_table_at_once_never_backwards() {
        let dir = std::env::temp_dir().join(format!("replicator-window-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).expect("open");
        for (name, state) in [
            ("dbo.a", TableState::CatchingUp),
            ("dbo.b", TableState::Streaming),
            ("dbo.c", TableState::CatchingUp),
            ("dbo.d", TableState::Errored),
        ] {
            s.update(name, |_| {
                let mut r = TableRecord::new(
                    name.replace("dbo", "public"),
                    Some(ChangeSource::ChangeTracking),
                    0,
                );
                r.state = state;
                r.position = Some(Position::Ct(5));
                r
            })
            .unwrap();
        }
        let updates: Vec<WindowUpdate> = vec![
            (
                "dbo.a".into(),
                Position::Ct(9),
                Box::new(|r: &mut TableRecord| r.changes_applied += 3),
            ),
            // Older than the stored position: the position stays, the counters move.
            (
                "dbo.b".into(),
                Position::Ct(4),
                Box::new(|r: &mut TableRecord| r.changes_applied += 1),
            ),
        ];
        let caught_up = ["dbo.a", "dbo.b", "dbo.c", "dbo.d"].map(String::from);
        let streaming = s.advance_window(updates, &caught_up).unwrap();
        assert_eq!(streaming, ["dbo.a", "dbo.c"]);
        let rec = |n: &str| s.table(n).unwrap().unwrap();
        assert_eq!(rec("dbo.a").position, Some(Position::Ct(9)));
        assert_eq!(rec("dbo.a").changes_applied, 3);
        assert_eq!(rec("dbo.b").position, Some(Position::Ct(5)));
        assert_eq!(rec("dbo.b").changes_applied, 1);
        assert_eq!(rec("dbo.c").state, TableState::Streaming);
        // An errored table is not revived by a window.
        assert_eq!(rec("dbo.d").state, TableState::Errored);
        // A clone shares the open database.
        assert_eq!(
            s.clone().table("dbo.a").unwrap().unwrap().changes_applied,
            3
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `tests/fixtures/store-v1.redb` was written by the release before records were typed
    /// (version 1): four tables (Change Tracking streaming with a validation and a loss, CDC
    /// catching up, copied-once errored, pending), two journal entries and a meta value.
    #[test]
    fn a_store_written_by_the_previous_release_is_read_and_upgraded() {
        let dir = std::env::temp_dir().join(format!("replicator-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1.redb");
        std::fs::copy(&fixture, dir.join("replicator.redb")).expect("copy the fixture");
        let raw_versions = |s: &Store| -> Vec<u8> {
            let r = s.db.begin_read().unwrap();
            let t = r.open_table(TABLES).unwrap();
            t.iter().unwrap().map(|i| i.unwrap().1.value()[0]).collect()
        };
        let check = |s: &Store| {
            let orders = s.table("dbo.Orders").unwrap().expect("dbo.Orders");
            assert_eq!(orders.target, "public.orders");
            assert_eq!(orders.state, TableState::Streaming);
            assert_eq!(orders.change_source, Some(ChangeSource::ChangeTracking));
            assert_eq!(orders.start_position, Some(Position::Ct(17)));
            assert_eq!(orders.position, Some(Position::Ct(42)));
            assert_eq!(orders.source_position, Some(Position::Ct(42)));
            assert_eq!((orders.rows_copied, orders.changes_applied), (830, 25));
            assert_eq!(orders.lag_seconds, 0.25);
            assert_eq!(
                orders.losses,
                [("notes".to_string(), "nul_stripped".to_string(), 2)]
            );
            let v = orders.last_validation.expect("validation");
            assert_eq!((v.result, v.mode.as_str()), (Verdict::Equal, "full"));
            assert_eq!((v.source_rows, v.target_rows), (830, 830));
            let details = s.table("sales.[Order Details]").unwrap().expect("cdc");
            assert_eq!(details.state, TableState::CatchingUp);
            assert_eq!(
                details.change_source,
                Some(ChangeSource::Cdc(String::new()))
            );
            let lsn = |b: [u8; 10]| Some(Position::Cdc(Lsn(b)));
            assert_eq!(
                details.start_position,
                lsn([0, 0, 0, 0x2a, 0, 0, 0, 0x10, 0, 3])
            );
            assert_eq!(details.position, lsn([0, 0, 0, 0x2b, 0, 0, 0, 0x20, 0, 1]));
            let shippers = s.table("dbo.Shippers").unwrap().expect("errored");
            assert_eq!(shippers.state, TableState::Errored);
            assert_eq!(shippers.change_source, Some(ChangeSource::CopiedOnce));
            let e = shippers.last_error.expect("error");
            assert_eq!(
                (e.message.as_str(), e.hint.as_deref()),
                ("table dbo.Shippers: boom", Some("fix it"))
            );
            let pending = s.table("dbo.Pending").unwrap().expect("pending");
            assert_eq!(
                (pending.state, pending.position),
                (TableState::Pending, None)
            );
            assert_eq!(s.tables().unwrap().len(), 4);
            let events: Vec<_> = s.history().unwrap().into_iter().map(|e| e.event).collect();
            assert_eq!(events, ["snapshot_started", "cutover"]);
            assert_eq!(
                s.meta::<String>("cutover").unwrap().as_deref(),
                Some("2026-12-06T00:00:00Z")
            );
        };
        {
            let s = Store::open(&dir).expect("open the version 1 store");
            assert_eq!(
                raw_versions(&s),
                [TABLE_RECORD_VERSION; 4],
                "upgraded on open"
            );
            check(&s);
            // It keeps working as a current store: positions still never move back.
            s.advance_position("dbo.Orders", &Position::Ct(40), |_| {})
                .unwrap();
            s.advance_position("dbo.Orders", &Position::Ct(43), |_| {})
                .unwrap();
        }
        let s = Store::open(&dir).expect("reopen");
        assert_eq!(
            s.table("dbo.Orders").unwrap().unwrap().position,
            Some(Position::Ct(43))
        );
        // A version 1 record that does not decode stops the upgrade naming its table.
        {
            let w = s.db.begin_write().unwrap();
            w.open_table(TABLES)
                .unwrap()
                .insert("dbo.Broken", [1u8, 0xff, 0xff].as_slice())
                .unwrap();
            w.commit().unwrap();
        }
        drop(s);
        let e = Store::open(&dir).err().expect("refused").to_string();
        assert!(e.contains("table dbo.Broken"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_fallback_record_reads_older_forms_and_refuses_a_damaged_one() {
        let dir = std::env::temp_dir().join(format!("replicator-fallback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).expect("open");
        assert_eq!(s.fallback().unwrap(), None);
        // Written before `releasing` and `fenced_ms` existed: they read as not set.
        s.set_meta(FALLBACK_META, &r#"{"slot":"s1","active":true}"#.to_string())
            .unwrap();
        let rec = s.fallback().unwrap().expect("a record");
        assert_eq!((rec.slot.as_str(), rec.active), ("s1", true));
        assert_eq!((rec.releasing, rec.fenced_ms), (false, None));
        // A damaged record stops whoever reads it, rather than reading as "no fallback".
        s.set_meta(FALLBACK_META, &"{not json".to_string()).unwrap();
        let e = s.fallback().unwrap_err().to_string();
        assert!(e.contains("fallback record cannot be read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
