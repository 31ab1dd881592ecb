//! One snapshot chunk from SQL Server's rows to PostgreSQL's binary COPY bytes, by one of two
//! decoders: the snapshot's own ([`Decoder::Direct`]: TDS tokens parsed from tiberius's raw
//! packets, plain values written straight into COPY fields) or tiberius's rows
//! ([`Decoder::Tiberius`]: the general path, kept for what the first does not read and as the
//! reference the differential tests compare against).
//!
//! Contract: both decoders give the same bytes, the same losses and the same errors for the
//! same rows (except that a value whose bytes are invalid for its type is named with its column
//! and key by the direct decoder, where tiberius's rows give only the driver's message); the chunk's last key is taken from the rows read; COPY pieces are at most about
//! 1 MiB, so memory does not grow with the chunk.

use crate::config::Policies;
use crate::convert::copy;
use crate::convert::value::to_value;
use crate::convert::{direct, LossKind, Losses, TablePlan};
use crate::error::{Context, Error};
use crate::source::read::{chunk_sql, key_display, Key, KeyValue};
use crate::source::wire::transcode;
use crate::source::wire::{RawRows, Timed, WireError};
use crate::source::Tds;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, TryStreamExt};
use std::pin::Pin;
use tiberius::{ColumnData, Query};

/// The size of one COPY piece.
const PIECE: usize = 1 << 20;

/// How a chunk's rows are decoded (`replication.snapshot_decoder`).
pub use crate::config::SnapshotDecoder as Decoder;

/// Where a chunk's COPY pieces go, counting their bytes.
pub struct Pieces<'a> {
    to: PieceSink<'a>,
    sent: usize,
}

enum PieceSink<'a> {
    /// A COPY in progress.
    Copy(Pin<&'a mut tokio_postgres::CopyInSink<Bytes>>),
    /// Memory (the differential tests).
    Collect(&'a mut Vec<u8>),
}

impl<'a> Pieces<'a> {
    /// Into a COPY in progress.
    pub fn copy(sink: Pin<&'a mut tokio_postgres::CopyInSink<Bytes>>) -> Self {
        Pieces {
            to: PieceSink::Copy(sink),
            sent: 0,
        }
    }

    /// Into memory.
    pub fn collect(v: &'a mut Vec<u8>) -> Self {
        Pieces {
            to: PieceSink::Collect(v),
            sent: 0,
        }
    }

    async fn send(&mut self, piece: Bytes, plan: &TablePlan) -> Result<(), Error> {
        self.sent += piece.len();
        match &mut self.to {
            PieceSink::Copy(sink) => sink
                .send(piece)
                .await
                .context(|| format!("COPY into {}", plan.target)),
            PieceSink::Collect(v) => {
                v.extend_from_slice(&piece);
                Ok(())
            }
        }
    }
}

/// What one chunk read gave.
#[derive(Debug, Default)]
pub struct ChunkRead {
    /// Rows read.
    pub rows: i64,
    /// COPY bytes written (header and trailer included).
    pub bytes: usize,
    /// The last row's key.
    pub last: Option<Key>,
    /// Policy-driven changes.
    pub losses: Losses,
}

/// Why a chunk read stopped.
pub enum ChunkError {
    /// The direct decoder does not read a column of this result: read it with tiberius.
    Unsupported(String),
    /// Anything else.
    Failed(Error),
}

impl From<Error> for ChunkError {
    fn from(e: Error) -> Self {
        ChunkError::Failed(e)
    }
}

/// The chunk's query: up to `limit` rows after `after` and up to `upto`, in key order.
pub fn chunk_query(
    plan: &TablePlan,
    after: Option<&Key>,
    upto: Option<&Key>,
    limit: usize,
    utf16_safe: bool,
) -> Query<'static> {
    let sql = chunk_sql(plan, after.is_some(), upto.is_some(), limit, utf16_safe);
    let mut q = Query::new(sql);
    for k in after.into_iter().chain(upto).flatten() {
        q.bind(k.to_cell());
    }
    q
}

/// Reads the chunk `q` selects and writes it to `pieces` as one binary COPY stream (header,
/// rows, trailer).
pub async fn read_chunk(
    tds: &mut Tds,
    q: Query<'static>,
    plan: &TablePlan,
    policies: &Policies,
    decoder: Decoder,
    pieces: &mut Pieces<'_>,
) -> Result<ChunkRead, ChunkError> {
    let mut buf = BytesMut::with_capacity(PIECE + (64 << 10));
    copy::header(&mut buf);
    let read = match decoder {
        Decoder::Direct => direct_rows(tds, q, plan, policies, pieces, &mut buf).await?,
        Decoder::Tiberius => tiberius_rows(tds, q, plan, policies, pieces, &mut buf).await?,
    };
    copy::trailer(&mut buf);
    pieces.send(buf.split().freeze(), plan).await?;
    let mut read = read;
    read.bytes = pieces.sent;
    Ok(read)
}

/// Sends the buffer as a piece once it holds a piece's worth.
async fn maybe_send(
    buf: &mut BytesMut,
    pieces: &mut Pieces<'_>,
    plan: &TablePlan,
) -> Result<(), Error> {
    if buf.len() >= PIECE {
        pieces.send(buf.split().freeze(), plan).await?;
        // split() leaves no capacity: reserve a whole piece again, not by doubling.
        buf.reserve(PIECE + (64 << 10));
    }
    Ok(())
}

fn convert_error(plan: &TablePlan, key: &[KeyValue], e: impl std::fmt::Display) -> Error {
    Error::table(
        &plan.source.name,
        format!("{e} at key {}", key_display(plan, key)),
        Some("change the policy or the column's type in the configuration, then restart"),
    )
}

fn wire_error(plan: &TablePlan, e: WireError) -> ChunkError {
    match e {
        WireError::Unsupported(what) => ChunkError::Unsupported(what),
        WireError::Driver(source) => ChunkError::Failed(Error::Source {
            context: format!("read a chunk of {}", plan.source.name),
            source,
        }),
        WireError::Malformed(m) => ChunkError::Failed(Error::table(
            &plan.source.name,
            format!("the snapshot's decoder could not read SQL Server's response: {m}"),
            Some("set replication.snapshot_decoder = \"tiberius\" and restart, and report this"),
        )),
        WireError::Value(m) => ChunkError::Failed(Error::table(&plan.source.name, m, None)),
    }
}

/// A value of column `i` that could not be read, named with its column and the row's key.
fn cell_error(plan: &TablePlan, i: usize, key: &[KeyValue], e: WireError) -> ChunkError {
    let col = &plan.columns[i];
    let at = format!("column {} at key {}", col.target, key_display(plan, key));
    match e {
        WireError::Value(m) => ChunkError::Failed(Error::table(
            &plan.source.name,
            format!("{at}: {m}"),
            Some(&format!(
                "set columns.{}.type = \"bytea\" to copy its bytes as they are, or correct the value at the source",
                col.source
            )),
        )),
        WireError::Malformed(m) => wire_error(plan, WireError::Malformed(format!("{at}: {m}"))),
        other => wire_error(plan, other),
    }
}

async fn direct_rows(
    tds: &mut Tds,
    q: Query<'static>,
    plan: &TablePlan,
    policies: &Policies,
    pieces: &mut Pieces<'_>,
    buf: &mut BytesMut,
) -> Result<ChunkRead, ChunkError> {
    let response = q
        .query_raw(tds)
        .await
        .context(|| format!("read a chunk of {}", plan.source.name))?;
    let src = Timed {
        response,
        timeout: crate::source::COMMAND_TIMEOUT,
    };
    let mut rows = RawRows::start(src).await.map_err(|e| wire_error(plan, e))?;
    if rows.columns().len() != plan.columns.len() {
        return Err(wire_error(
            plan,
            WireError::Malformed(format!(
                "{} columns where {} were selected",
                rows.columns().len(),
                plan.columns.len()
            )),
        ));
    }
    // The hottest plain cases go from the bytes straight to the field.
    let fast: Vec<Option<transcode::Transcode>> = rows
        .columns()
        .iter()
        .zip(&plan.columns)
        .map(|(w, c)| transcode::plan(w.ty, c))
        .collect();
    let mut read = ChunkRead::default();
    let mut key: Key = Vec::with_capacity(plan.key.len());
    while rows.next_row().await.map_err(|e| wire_error(plan, e))? {
        key.clear();
        for &i in &plan.key {
            let (cell, _) = rows.cell(i).map_err(|e| wire_error(plan, e))?;
            key.push(KeyValue::from_cell(&cell));
        }
        copy::row_start(buf, plan.columns.len());
        for (i, col) in plan.columns.iter().enumerate() {
            if let Some(t) = fast[i] {
                match rows.raw(i) {
                    Some(None) if !col.not_null => {
                        buf.put_i32(-1);
                        continue;
                    }
                    Some(Some(b)) if transcode::write(t, b, buf) => continue,
                    _ => {}
                }
            }
            let (cell, lossy) = rows.cell(i).map_err(|e| cell_error(plan, i, &key, e))?;
            if lossy {
                read.losses
                    .add(&col.target, LossKind::LoneSurrogateReplaced);
            }
            if !direct::encode(&cell, col, buf) {
                let v = to_value(cell, col, policies, &mut read.losses)
                    .map_err(|e| convert_error(plan, &key, e))?;
                copy::field(buf, &v);
            }
        }
        read.rows += 1;
        maybe_send(buf, pieces, plan).await?;
    }
    if read.rows > 0 {
        read.last = Some(key);
    }
    Ok(read)
}

async fn tiberius_rows(
    tds: &mut Tds,
    q: Query<'static>,
    plan: &TablePlan,
    policies: &Policies,
    pieces: &mut Pieces<'_>,
    buf: &mut BytesMut,
) -> Result<ChunkRead, ChunkError> {
    let what = || format!("read a chunk of {}", plan.source.name);
    let mut stream = q.query(tds).await.context(what)?.into_row_stream();
    let mut read = ChunkRead::default();
    while let Some(row) = stream.try_next().await.context(what)? {
        let cells: Vec<ColumnData<'static>> = row.into_iter().collect();
        let key: Key = plan
            .key
            .iter()
            .map(|i| KeyValue::from_cell(&cells[*i]))
            .collect();
        copy::row_start(buf, plan.columns.len());
        for (cell, col) in cells.into_iter().zip(&plan.columns) {
            let v = to_value(cell, col, policies, &mut read.losses)
                .map_err(|e| convert_error(plan, &key, e))?;
            copy::field(buf, &v);
        }
        read.last = Some(key);
        read.rows += 1;
        maybe_send(buf, pieces, plan).await?;
    }
    Ok(read)
}

/// The COPY stream of up to `limit` rows of a table from its first key, by `decoder`, held in
/// memory: what the differential tests compare. Not used by the daemon.
pub async fn copy_stream(
    tds: &mut Tds,
    plan: &TablePlan,
    policies: &Policies,
    decoder: Decoder,
    limit: usize,
    utf16_safe: bool,
) -> Result<(Vec<u8>, ChunkRead), Error> {
    let mut out = Vec::new();
    let q = chunk_query(plan, None, None, limit, utf16_safe);
    match read_chunk(
        tds,
        q,
        plan,
        policies,
        decoder,
        &mut Pieces::collect(&mut out),
    )
    .await
    {
        Ok(read) => Ok((out, read)),
        Err(ChunkError::Failed(e)) => Err(e),
        Err(ChunkError::Unsupported(what)) => Err(Error::table(
            &plan.source.name,
            format!("not read by the snapshot's decoder: {what}"),
            None,
        )),
    }
}

/// The COPY bytes a snapshot chunk aims at when `replication.snapshot_chunk_rows` is not set.
pub const CHUNK_BYTES: usize = 16 << 20;

/// Rows for the next chunk, from what the last one gave: about [`CHUNK_BYTES`] of COPY data,
/// between 1,000 and 500,000 rows. Narrow rows make fewer, larger chunks (fewer round trips and
/// commits); wide rows smaller ones (shorter transactions, less to redo after a crash).
pub fn next_chunk_rows(bytes: usize, rows: i64) -> usize {
    if rows <= 0 {
        return 50_000;
    }
    let per_row = (bytes / rows as usize).max(1);
    (CHUNK_BYTES / per_row).clamp(1_000, 500_000)
}

#[cfg(test)]
mod tests {
    use super::next_chunk_rows;

    #[test]
    fn chunks_aim_at_sixteen_mebibytes_within_bounds() {
        assert_eq!(next_chunk_rows(50_000 * 60, 50_000), (16 << 20) / 60);
        assert_eq!(next_chunk_rows(50_000 * 8, 50_000), 500_000);
        assert_eq!(next_chunk_rows(1_000 * 100_000, 1_000), 1_000);
        assert_eq!(next_chunk_rows(19, 0), 50_000);
    }
}
