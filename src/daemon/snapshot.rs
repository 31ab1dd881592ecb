//! The snapshot: every pending or interrupted table, parts in parallel up to
//! `snapshot_workers`. For one table: the start position recorded before the first chunk, the
//! key space split at points SQL Server computes ([`crate::source::split`]), and each part
//! copied in keyset chunks, every chunk one target transaction that COPYs its rows and records
//! its progress; a part that fails transiently is retried from its last committed key.

use super::chunk::{chunk_query, read_chunk, ChunkError, Decoder, Pieces};
use super::{connect_source, connect_target, Shared, TableRt};
use crate::error::{Backoff, ErrorKind};
use crate::error::{Context, Error};
use crate::model::ChangeSource;
use crate::model::{quote_pg, Position};
use crate::sink::ddl;
use crate::sink::progress;
use crate::source::read::Key;
use crate::source::{self, Tds};
use crate::state::{TableRecord, TableState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The start position of a table's change stream, read before its first chunk.
pub async fn start_position(tds: &mut Tds, kind: &ChangeSource) -> Result<Position, Error> {
    Ok(match kind {
        ChangeSource::ChangeTracking => {
            Position::Ct(source::ct::current_version(tds).await?.ok_or_else(|| {
                Error::Fatal("Change Tracking is not enabled for the source database".into())
            })?)
        }
        ChangeSource::Cdc(_) => Position::Cdc(
            source::cdc::max_lsn(tds)
                .await?
                .unwrap_or(crate::model::Lsn([0; 10])),
        ),
        ChangeSource::CopiedOnce => Position::Ct(0),
    })
}

/// Copies one part to the end, chunk by chunk. Resumes after the last committed key.
pub async fn copy_part(
    shared: &Arc<Shared>,
    rt: &TableRt,
    part: &progress::Part,
    tds: &mut Tds,
    pg: &mut tokio_postgres::Client,
    utf16_safe: bool,
) -> Result<(), Error> {
    let plan = &rt.plan;
    let cfg = &shared.config;
    // The first chunk's size is configured (or the default); without a configured size the
    // next ones aim at a size in bytes (`chunk::next_chunk_rows`).
    let mut chunk_rows = cfg.snapshot_chunk_rows;
    let mut last: Option<Key> = part.last.clone().or_else(|| part.lower.clone());
    let source_name = plan.source.name.to_string();
    let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        plan.target.sql(),
        cols.join(", ")
    );
    // National text the driver could not decode is re-read as bytes by tiberius's path only.
    let mut decoder = if utf16_safe {
        Decoder::Tiberius
    } else {
        cfg.snapshot_decoder
    };
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let q = chunk_query(
            plan,
            last.as_ref(),
            part.upper.as_ref(),
            chunk_rows,
            utf16_safe,
        );
        let tx = pg
            .transaction()
            .await
            .context(|| format!("begin a chunk of {source_name}"))?;
        let sink = tx
            .copy_in(&copy_sql)
            .await
            .context(|| format!("COPY into {}", plan.target))?;
        futures_util::pin_mut!(sink);
        let read = read_chunk(
            tds,
            q,
            plan,
            &cfg.policies,
            decoder,
            &mut Pieces::copy(sink.as_mut()),
        )
        .await;
        let read = match read {
            Ok(r) => r,
            Err(ChunkError::Failed(e)) => return Err(e),
            Err(ChunkError::Unsupported(what)) => {
                // Nothing was written: the transaction rolls back, the chunk is read again.
                tracing::info!(table = %source_name, column_type = %what,
                    "the snapshot's decoder does not read this table; reading it through tiberius");
                decoder = Decoder::Tiberius;
                continue;
            }
        };
        sink.as_mut()
            .finish()
            .await
            .context(|| format!("COPY into {}", plan.target))?;
        let done = (read.rows as usize) < chunk_rows;
        progress::record_chunk(
            &tx,
            &cfg.mapping.progress_schema,
            &source_name,
            part.part,
            read.last.as_deref(),
            read.rows,
            done,
        )
        .await?;
        tx.commit()
            .await
            .context(|| format!("commit a chunk of {source_name}"))?;
        shared.snapshot_progress(&source_name, read.rows, &read.losses, started.elapsed())?;
        if let Some(k) = read.last {
            last = Some(k);
        }
        if done {
            return Ok(());
        }
        if !cfg.snapshot_chunk_rows_set {
            chunk_rows = super::chunk::next_chunk_rows(read.bytes, read.rows);
        }
    }
}

/// Whether an error is a client's failure to decode national text (lone UTF-16 surrogates):
/// the chunk is then re-read with national text as bytes.
pub fn is_utf16_decode_failure(e: &Error) -> bool {
    matches!(e, Error::Source { source, .. } if source.to_string().contains("UTF-16"))
}

/// Snapshots every pending or interrupted table, parts in parallel up to `snapshot_workers`.
pub(super) async fn run_snapshots(
    shared: Arc<Shared>,
    committed: BTreeMap<String, progress::TableProgress>,
) -> Result<(), Error> {
    let todo: Vec<(String, TableRt)> = shared.registry.runtimes()?;
    let sem = shared.snapshot_slots.clone();
    let mut handles = Vec::new();
    for (name, rt) in todo {
        let state = shared.store.table(&name)?.map(|r| r.state);
        if !matches!(state, Some(TableState::Pending | TableState::Snapshotting)) {
            continue;
        }
        let prog = committed
            .get(&name)
            .filter(|p| p.phase == progress::Phase::Snapshotting)
            .cloned();
        let (sh, sem) = (shared.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            if let Err(e) = snapshot_table(&sh, &name, &rt, prog, sem).await {
                match e.kind() {
                    ErrorKind::Fatal => return Err(e),
                    _ if sh.stopping() => {}
                    _ => sh.table_failed(&name, &e),
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| Error::panicked("snapshot", e))??;
    }
    Ok(())
}

/// Snapshots one table (resuming its committed parts), then marks it catching up.
pub async fn snapshot_table(
    shared: &Arc<Shared>,
    name: &str,
    rt: &TableRt,
    prog: Option<progress::TableProgress>,
    sem: Arc<Semaphore>,
) -> Result<(), Error> {
    let schema = shared.config.mapping.progress_schema.clone();
    let parts = match prog {
        Some(p) if !p.parts.is_empty() => p.parts,
        _ => {
            let _permit = sem
                .acquire()
                .await
                .map_err(|_| Error::Poisoned("snapshot slots"))?;
            let mut tds = connect_source(shared).await?;
            let mut pg = connect_target(shared).await?;
            // The start position is read before the first chunk and committed with the parts.
            let start = start_position(&mut tds, &rt.kind).await?;
            let wanted = (rt.plan.source.estimated_rows
                / (shared.config.snapshot_chunk_rows as i64 * 2))
                .clamp(1, shared.config.snapshot_workers as i64) as usize;
            let ranges = crate::source::split::key_ranges(&mut tds, &rt.plan, wanted).await?;
            let tx = pg.transaction().await.map_err(|e| Error::Target {
                context: "begin".into(),
                source: e,
            })?;
            ddl::drop_foreign_keys_touching(&tx, &rt.plan.target).await?;
            tx.execute(&format!("TRUNCATE {}", rt.plan.target.sql()), &[])
                .await
                .map_err(|e| Error::Target {
                    context: format!("empty {} before its snapshot", rt.plan.target),
                    source: e,
                })?;
            progress::begin_snapshot(
                &tx,
                &schema,
                name,
                &rt.plan.target.to_string(),
                &start,
                rt.shape(),
                &ranges,
            )
            .await?;
            tx.commit().await.map_err(|e| Error::Target {
                context: "commit".into(),
                source: e,
            })?;
            shared.store.update(name, |old| {
                let mut r = old.unwrap_or_else(|| {
                    TableRecord::new(rt.plan.target.to_string(), Some(rt.kind.clone()), 0)
                });
                r.state = TableState::Snapshotting;
                r.start_position = Some(start);
                r.rows_copied = 0;
                r.snapshot_started_ms = Some(crate::state::now_ms());
                r
            })?;
            shared.store.journal(
                "snapshot_started",
                Some(name),
                format!("start position {start}, {} part(s)", ranges.len()),
            )?;
            tracing::info!(table = name, start = %start, parts = ranges.len(), "snapshot started");
            ranges
                .into_iter()
                .enumerate()
                .map(|(i, (lower, upper))| progress::Part {
                    part: i as i32,
                    lower,
                    upper,
                    last: None,
                    rows: 0,
                    done: false,
                })
                .collect()
        }
    };
    shared.set_state(name, TableState::Snapshotting)?;
    let mut handles = Vec::new();
    for part in parts.into_iter().filter(|p| !p.done) {
        let (sh, rt, sem, name) = (shared.clone(), rt.clone(), sem.clone(), name.to_string());
        handles.push(tokio::spawn(async move {
            let _permit = sem
                .acquire_owned()
                .await
                .map_err(|_| Error::Poisoned("snapshot slots"))?;
            copy_part_with_retry(&sh, &name, &rt, part).await
        }));
    }
    for h in handles {
        h.await.map_err(|e| Error::panicked("snapshot", e))??;
    }
    if shared.stopping() {
        return Ok(());
    }
    let pg = connect_target(shared).await?;
    progress::finish_snapshot(&pg, &schema, name).await?;
    let mut notes = Vec::new();
    let case = shared.config.mapping.identifier_case;
    let mut statements = ddl::index_sql(&rt.plan, case, &mut notes);
    statements.extend(ddl::comment_sql(&rt.plan));
    ddl::run_post_load(&pg, &rt.plan.target, &statements).await?;
    let checks = ddl::check_sql(&rt.plan, case, &mut notes);
    notes.extend(ddl::run_checks(&pg, &rt.plan, &checks).await);
    for n in notes {
        n.log();
    }
    let rec = shared.store.update(name, |old| {
        let mut r = old.unwrap_or_else(|| {
            TableRecord::new(rt.plan.target.to_string(), Some(rt.kind.clone()), 0)
        });
        r.state = TableState::CatchingUp;
        r.position = r.start_position;
        r
    })?;
    shared.store.journal(
        "snapshot_finished",
        Some(name),
        format!("{} rows copied", rec.rows_copied),
    )?;
    tracing::info!(table = name, rows = rec.rows_copied, "snapshot finished");
    Ok(())
}

async fn copy_part_with_retry(
    shared: &Arc<Shared>,
    name: &str,
    rt: &TableRt,
    mut part: progress::Part,
) -> Result<(), Error> {
    let mut backoff = Backoff::new(Duration::from_secs(30));
    let mut utf16_safe = false;
    loop {
        let mut tds = connect_source(shared).await?;
        let mut pg = connect_target(shared).await?;
        // Resume after what is committed on the target.
        let committed = progress::load(&pg, &shared.config.mapping.progress_schema).await?;
        if let Some(p) = committed
            .get(name)
            .and_then(|t| t.parts.iter().find(|p| p.part == part.part))
        {
            part = p.clone();
        }
        if part.done {
            return Ok(());
        }
        source::execute(
            &mut tds,
            "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
            "set snapshot isolation",
        )
        .await?;
        let outcome = tokio::select! {
            r = copy_part(shared, rt, &part, &mut tds, &mut pg, utf16_safe) => r,
            // Stopping abandons the chunk in flight: its transaction rolls back.
            _ = shared.lifecycle.stopped() => return Ok(()),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if is_utf16_decode_failure(&e) && !utf16_safe => {
                tracing::warn!(table = name, "national text the client cannot decode (lone surrogates): re-reading it as UTF-16 bytes");
                utf16_safe = true;
            }
            Err(e) if e.kind() == ErrorKind::Transient && !shared.stopping() => {
                shared.note_transient(Some(name), &e);
                if shared.sleep_or_stop(backoff.next_delay()).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}
