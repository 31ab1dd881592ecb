//! The target's progress tables (schema `replicator` by default): what is committed on the
//! target, written in the same transaction as the rows it describes. On start-up they win over
//! the embedded store.

use crate::error::{Context, Error};
use crate::key::{decode_key, encode_key, Key};
use crate::model::{quote_pg, Position, SourceColumn};
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

/// One snapshot part: a key range (lower exclusive, upper inclusive) and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Part number (0-based).
    pub part: i32,
    /// Rows strictly after this key (none: from the start).
    pub lower: Option<Key>,
    /// Rows up to and including this key (none: to the end).
    pub upper: Option<Key>,
    /// Last key copied (none: nothing yet).
    pub last: Option<Key>,
    /// Rows copied so far.
    pub rows: i64,
    /// Finished.
    pub done: bool,
}

/// Where a table stands on the target (the `phase` column of the progress table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The snapshot is being copied (its parts say how far).
    Snapshotting,
    /// The snapshot is done; windows apply changes from `stream_position`.
    Streaming,
    /// `replicator resync` asked for a new copy; the next start-up takes it.
    Resync,
}

impl Phase {
    /// The text stored in the progress table.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Snapshotting => "snapshotting",
            Phase::Streaming => "streaming",
            Phase::Resync => "resync",
        }
    }

    /// Reads the stored text; `None` for a phase this release does not know.
    pub fn parse(s: &str) -> Option<Phase> {
        [Phase::Snapshotting, Phase::Streaming, Phase::Resync]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// One table's committed progress on the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TableProgress {
    /// Where it stands.
    pub phase: Phase,
    /// Target table (`schema.table`).
    pub target: String,
    /// Position read before the first chunk.
    pub start: Option<Position>,
    /// Changes applied up to here (streaming).
    pub position: Option<Position>,
    /// Snapshot parts.
    pub parts: Vec<Part>,
    /// The source columns the target table was built (or last reconciled) for; none in a record
    /// written before this was kept.
    pub columns: Option<Vec<SourceColumn>>,
    /// The CDC capture instance the position belongs to (none: Change Tracking, or a record
    /// written before this was kept).
    pub capture_instance: Option<String>,
    /// The last proof of equality still standing (see [`Proof`]).
    pub proof: Option<Proof>,
    /// Bumped by everything that writes the table's rows other than a window (a snapshot, a
    /// repair, a schema change); a proof is recorded only under the epoch it was taken in.
    pub proof_epoch: i64,
}

/// A full validation's result that cutover may build on: at `position` (P1), every row of the
/// target equalled the source's, except keys changed after P1 (which the change source lists).
/// Recorded only while nothing but windows has written the table since (the epoch), and cleared
/// by the next snapshot, repair, schema change or capture-instance take-over, in the same
/// transaction as that write.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proof {
    /// The target's committed position the comparison was made at (P1).
    pub position: Position,
    /// When the comparison began (Unix ms).
    pub at_ms: i64,
    /// Rows compared on each side (the keys changing meanwhile left out).
    pub rows: i64,
    /// `full` (rows read by the replicator) or `full, in database` (checksums by both).
    pub mode: String,
    /// The write guard's identity at P1 ([`crate::sink::guard::identity`]).
    pub guard: String,
}

/// Creates the progress schema and tables. Idempotent.
pub async fn ensure(pg: &impl GenericClient, schema: &str) -> Result<(), Error> {
    let s = quote_pg(schema);
    pg.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.table_progress (
            source_table text PRIMARY KEY,
            target_table text NOT NULL,
            phase text NOT NULL,
            start_position text,
            stream_position text,
            updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE IF NOT EXISTS {s}.snapshot_parts (
            source_table text NOT NULL,
            part int NOT NULL,
            lower_key bytea,
            upper_key bytea,
            last_key bytea,
            rows_copied bigint NOT NULL DEFAULT 0,
            done boolean NOT NULL DEFAULT false,
            PRIMARY KEY (source_table, part));
         ALTER TABLE {s}.table_progress ADD COLUMN IF NOT EXISTS source_columns text;
         ALTER TABLE {s}.table_progress ADD COLUMN IF NOT EXISTS capture_instance text;
         ALTER TABLE {s}.table_progress ADD COLUMN IF NOT EXISTS proof text;
         ALTER TABLE {s}.table_progress ADD COLUMN IF NOT EXISTS proof_epoch bigint NOT NULL DEFAULT 0;"
    ))
    .await
    .context(|| format!("create the progress tables in schema {schema}"))
}

/// Every table's committed progress, by source table name.
pub async fn load(
    pg: &impl GenericClient,
    schema: &str,
) -> Result<BTreeMap<String, TableProgress>, Error> {
    let s = quote_pg(schema);
    let mut out = BTreeMap::new();
    let rows = pg
        .query(
            &format!("SELECT source_table, target_table, phase, start_position, stream_position, source_columns, capture_instance, proof, proof_epoch FROM {s}.table_progress"),
            &[],
        )
        .await
        .context(|| "read table progress".into())?;
    for r in rows {
        let start: Option<String> = r.get(3);
        let pos: Option<String> = r.get(4);
        let columns: Option<String> = r.get(5);
        let source: String = r.get(0);
        let phase: String = r.get(2);
        let phase = Phase::parse(&phase).ok_or_else(|| {
            Error::table(
                &source,
                format!("the target's progress table records phase {phase:?}, which this release does not know"),
                Some("run the replicator release that wrote it, or `replicator resync` the table"),
            )
        })?;
        out.insert(
            source,
            TableProgress {
                target: r.get(1),
                phase,
                start: start.as_deref().and_then(Position::parse),
                position: pos.as_deref().and_then(Position::parse),
                parts: Vec::new(),
                // Unreadable (written by a newer release?): derived from the target instead.
                columns: columns.and_then(|c| serde_json::from_str(&c).ok()),
                capture_instance: r.get(6),
                // Unreadable: no proof (cutover then checks every row).
                proof: r
                    .get::<_, Option<String>>(7)
                    .and_then(|p| serde_json::from_str(&p).ok()),
                proof_epoch: r.get(8),
            },
        );
    }
    let rows = pg
        .query(
            &format!("SELECT source_table, part, lower_key, upper_key, last_key, rows_copied, done FROM {s}.snapshot_parts ORDER BY source_table, part"),
            &[],
        )
        .await
        .context(|| "read snapshot progress".into())?;
    for r in rows {
        let table: String = r.get(0);
        let key = |i: usize| {
            r.get::<_, Option<Vec<u8>>>(i)
                .as_deref()
                .and_then(decode_key)
        };
        if let Some(t) = out.get_mut(&table) {
            t.parts.push(Part {
                part: r.get(1),
                lower: key(2),
                upper: key(3),
                last: key(4),
                rows: r.get(5),
                done: r.get(6),
            });
        }
    }
    Ok(out)
}

/// The shape a table's target rows are written in: the source columns the target table was built
/// for and the capture instance its positions belong to.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The plan's source columns.
    pub columns: &'a [SourceColumn],
    /// The CDC capture instance (none for Change Tracking or a table copied once).
    pub capture_instance: Option<&'a str>,
}

impl Shape<'_> {
    fn columns_json(&self) -> String {
        serde_json::to_string(self.columns).unwrap_or_else(|_| "null".into())
    }
}

/// Records a snapshot's start: its position, parts and shape, replacing any earlier attempt.
pub async fn begin_snapshot(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
    target: &str,
    start: &Position,
    shape: Shape<'_>,
    parts: &[(Option<Key>, Option<Key>)],
) -> Result<(), Error> {
    let s = quote_pg(schema);
    let ctx = || format!("record the start of {source}'s snapshot");
    tx.execute(
        &format!("DELETE FROM {s}.snapshot_parts WHERE source_table = $1"),
        &[&source],
    )
    .await
    .context(ctx)?;
    tx.execute(
        &format!(
            "INSERT INTO {s}.table_progress (source_table, target_table, phase, start_position, stream_position, source_columns, capture_instance) \
             VALUES ($1, $2, 'snapshotting', $3, NULL, $4, $5) ON CONFLICT (source_table) DO UPDATE SET \
             target_table = EXCLUDED.target_table, phase = 'snapshotting', start_position = EXCLUDED.start_position, \
             stream_position = NULL, source_columns = EXCLUDED.source_columns, \
             capture_instance = EXCLUDED.capture_instance, proof = NULL, \
             proof_epoch = {s}.table_progress.proof_epoch + 1, updated_at = now()"
        ),
        &[&source, &target, &start.to_string(), &shape.columns_json(), &shape.capture_instance],
    )
    .await
    .context(ctx)?;
    for (i, (lo, hi)) in parts.iter().enumerate() {
        tx.execute(
            &format!("INSERT INTO {s}.snapshot_parts (source_table, part, lower_key, upper_key) VALUES ($1, $2, $3, $4)"),
            &[&source, &(i as i32), &lo.as_deref().map(encode_key), &hi.as_deref().map(encode_key)],
        )
        .await
        .context(ctx)?;
    }
    Ok(())
}

/// Records one committed chunk of a part.
pub async fn record_chunk(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
    part: i32,
    last: Option<&[crate::key::KeyValue]>,
    rows: i64,
    done: bool,
) -> Result<(), Error> {
    let s = quote_pg(schema);
    let n = tx
        .execute(
            &format!(
                "UPDATE {s}.snapshot_parts SET last_key = COALESCE($3, last_key), rows_copied = rows_copied + $4, done = $5 \
                 WHERE source_table = $1 AND part = $2"
            ),
            &[&source, &part, &last.map(encode_key), &rows, &done],
        )
        .await
        .context(|| format!("record snapshot progress of {source}"))?;
    if n != 1 {
        return Err(Error::table(
            source,
            format!("snapshot part {part} vanished from the progress table"),
            Some("was the snapshot restarted by another process?"),
        ));
    }
    Ok(())
}

/// Marks the snapshot finished: the table streams from its start position.
pub async fn finish_snapshot(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
) -> Result<(), Error> {
    let s = quote_pg(schema);
    tx.execute(
        &format!(
            "UPDATE {s}.table_progress SET phase = 'streaming', stream_position = start_position, updated_at = now() \
             WHERE source_table = $1"
        ),
        &[&source],
    )
    .await
    .context(|| format!("record the end of {source}'s snapshot"))?;
    Ok(())
}

/// Records that a table's changes are applied up to `position`. Never moves backwards.
pub async fn record_position(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
    position: &Position,
) -> Result<(), Error> {
    let s = quote_pg(schema);
    tx.execute(
        &format!("UPDATE {s}.table_progress SET stream_position = $2, updated_at = now() WHERE source_table = $1"),
        &[&source, &position.to_string()],
    )
    .await
    .context(|| format!("record the position of {source}"))?;
    Ok(())
}

/// Records a table's new shape (a schema change applied, a capture instance taken over) in the
/// transaction that changes the target table, so the two never disagree after a crash.
pub async fn record_shape(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
    shape: Shape<'_>,
) -> Result<(), Error> {
    let s = quote_pg(schema);
    tx.execute(
        &format!("UPDATE {s}.table_progress SET source_columns = $2, capture_instance = $3, {INVALIDATE}, updated_at = now() WHERE source_table = $1"),
        &[&source, &shape.columns_json(), &shape.capture_instance],
    )
    .await
    .context(|| format!("record the shape of {source}"))?;
    Ok(())
}

/// Marks a table to be copied again (`resync`): the next start snapshots it afresh.
/// Idempotent; a table without a progress row is left alone.
pub async fn mark_resync(pg: &impl GenericClient, schema: &str, source: &str) -> Result<(), Error> {
    let s = quote_pg(schema);
    pg.execute(
        &format!("UPDATE {s}.table_progress SET phase = 'resync', {INVALIDATE}, updated_at = now() WHERE source_table = $1"),
        &[&source],
    )
    .await
    .context(|| format!("mark {source} for resync"))?;
    Ok(())
}

/// The SET clause that drops a table's proof and moves its epoch on.
const INVALIDATE: &str = "proof = NULL, proof_epoch = proof_epoch + 1";

/// Drops a table's proof: its rows are about to be written other than by a window (a repair).
/// Call it in the transaction that writes them.
pub async fn invalidate_proof(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
) -> Result<(), Error> {
    let s = quote_pg(schema);
    tx.execute(
        &format!("UPDATE {s}.table_progress SET {INVALIDATE} WHERE source_table = $1"),
        &[&source],
    )
    .await
    .context(|| format!("drop the equality proof of {source}"))?;
    Ok(())
}

/// A table's proof epoch now (read in a validation's pinned transaction).
pub async fn proof_epoch(
    tx: &impl GenericClient,
    schema: &str,
    source: &str,
) -> Result<Option<i64>, Error> {
    let s = quote_pg(schema);
    Ok(tx
        .query_opt(
            &format!("SELECT proof_epoch FROM {s}.table_progress WHERE source_table = $1"),
            &[&source],
        )
        .await
        .context(|| format!("read the proof epoch of {source}"))?
        .map(|r| r.get(0)))
}

/// Records `proof` unless the table's epoch moved on since `epoch` (something other than a
/// window wrote it meanwhile). Returns whether it was recorded.
pub async fn record_proof(
    pg: &impl GenericClient,
    schema: &str,
    source: &str,
    epoch: i64,
    proof: &Proof,
) -> Result<bool, Error> {
    let s = quote_pg(schema);
    let json = serde_json::to_string(proof).unwrap_or_default();
    let n = pg
        .execute(
            &format!("UPDATE {s}.table_progress SET proof = $3 WHERE source_table = $1 AND proof_epoch = $2"),
            &[&source, &epoch, &json],
        )
        .await
        .context(|| format!("record the equality proof of {source}"))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn phases_read_back_what_is_stored_and_refuse_the_unknown() {
        for p in [Phase::Snapshotting, Phase::Streaming, Phase::Resync] {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        // The statements that write a phase spell it as `as_str` does.
        let src = include_str!("progress.rs");
        for written in ["'snapshotting'", "'streaming'", "'resync'"] {
            assert!(src.contains(&format!("phase = {written}")), "{written}");
        }
        assert_eq!(Phase::parse("copying"), None);
        assert_eq!(Phase::parse("Streaming"), None);
    }
}
