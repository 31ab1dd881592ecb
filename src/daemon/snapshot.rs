//! The snapshot of one table: the start position recorded before the first chunk, the key
//! space split at points SQL Server computes, and each part copied in keyset chunks, every chunk
//! one target transaction that COPYs its rows and records its progress.

use super::{Kind, Shared, TableRt};
use crate::convert::value::to_value;
use crate::convert::{Losses, TablePlan};
use crate::error::{Context, Error};
use crate::model::{quote_pg, Position};
use crate::sink::{copy, progress};
use crate::source::read::{chunk_sql, key_display, split_points_sql, Key, KeyValue};
use crate::source::{self, Tds};
use bytes::BytesMut;
use futures_util::{SinkExt, TryStreamExt};
use std::sync::Arc;
use tiberius::Query;

/// The start position of a table's change stream, read before its first chunk.
pub async fn start_position(tds: &mut Tds, kind: &Kind) -> Result<Position, Error> {
    Ok(match kind {
        Kind::ChangeTracking => {
            Position::Ct(source::ct::current_version(tds).await?.ok_or_else(|| {
                Error::Fatal("Change Tracking is not enabled for the source database".into())
            })?)
        }
        Kind::Cdc(_) => Position::Cdc(
            source::cdc::max_lsn(tds)
                .await?
                .unwrap_or(crate::model::Lsn([0; 10])),
        ),
        Kind::None => Position::Ct(0),
    })
}

/// Splits the key space into about `parts` ranges at points SQL Server computes.
pub async fn split(
    tds: &mut Tds,
    plan: &TablePlan,
    parts: usize,
) -> Result<Vec<(Option<Key>, Option<Key>)>, Error> {
    if parts <= 1 || plan.source.estimated_rows < 2 {
        return Ok(vec![(None, None)]);
    }
    let step = (plan.source.estimated_rows / parts as i64).max(1);
    let sql = split_points_sql(plan, step);
    let rows = tds
        .simple_query(sql)
        .await
        .context(|| format!("compute split points of {}", plan.source.name))?
        .into_first_result()
        .await
        .context(|| format!("compute split points of {}", plan.source.name))?;
    let nkey = plan.key.len();
    let mut numbered: Vec<(i64, Key)> = rows
        .into_iter()
        .map(|r| {
            let cells: Vec<tiberius::ColumnData<'static>> = r.into_iter().collect();
            let rn = match cells.get(nkey) {
                Some(tiberius::ColumnData::I64(Some(n))) => *n,
                Some(tiberius::ColumnData::I32(Some(n))) => *n as i64,
                _ => 0,
            };
            (rn, cells[..nkey].iter().map(KeyValue::from_cell).collect())
        })
        .collect();
    numbered.sort_by_key(|(rn, _)| *rn);
    let mut points: Vec<Key> = numbered.into_iter().map(|(_, k)| k).collect();
    points.truncate(parts.saturating_sub(1).max(1));
    let mut out = Vec::new();
    let mut lower: Option<Key> = None;
    for p in points {
        out.push((lower.take(), Some(p.clone())));
        lower = Some(p);
    }
    out.push((lower, None));
    Ok(out)
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
    let chunk_rows = cfg.snapshot_chunk_rows;
    let mut last: Option<Key> = part.last.clone().or_else(|| part.lower.clone());
    let source_name = plan.source.name.to_string();
    let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        plan.target.sql(),
        cols.join(", ")
    );
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let sql = chunk_sql(
            plan,
            last.is_some(),
            part.upper.is_some(),
            chunk_rows,
            utf16_safe,
        );
        let mut q = Query::new(sql);
        for k in last.iter().chain(part.upper.iter()).flatten() {
            q.bind(k.to_cell());
        }
        let tx = pg
            .transaction()
            .await
            .context(|| format!("begin a chunk of {source_name}"))?;
        let sink = tx
            .copy_in(&copy_sql)
            .await
            .context(|| format!("COPY into {}", plan.target))?;
        futures_util::pin_mut!(sink);
        let mut stream = q
            .query(tds)
            .await
            .context(|| format!("read a chunk of {source_name}"))?
            .into_row_stream();
        let mut buf = BytesMut::with_capacity(1 << 20);
        copy::header(&mut buf);
        let mut rows: i64 = 0;
        let mut losses = Losses::default();
        let mut chunk_last: Option<Key> = None;
        while let Some(row) = stream
            .try_next()
            .await
            .context(|| format!("read a chunk of {source_name}"))?
        {
            let cells: Vec<tiberius::ColumnData<'static>> = row.into_iter().collect();
            let key: Key = plan
                .key
                .iter()
                .map(|i| KeyValue::from_cell(&cells[*i]))
                .collect();
            copy::row_start(&mut buf, plan.columns.len());
            for (cell, col) in cells.into_iter().zip(&plan.columns) {
                let v = to_value(cell, col, &cfg.policies, &mut losses).map_err(|e| {
                    Error::table(
                        &source_name,
                        format!("{e} at key {}", key_display(plan, &key)),
                        Some("change the policy or the column's type in the configuration, then restart"),
                    )
                })?;
                copy::field(&mut buf, &v);
            }
            chunk_last = Some(key);
            rows += 1;
            if buf.len() >= 1 << 20 {
                sink.send(buf.split().freeze())
                    .await
                    .context(|| format!("COPY into {}", plan.target))?;
                // split() leaves no capacity: reserve a whole piece again, not by doubling.
                buf.reserve(1 << 20);
            }
        }
        drop(stream);
        copy::trailer(&mut buf);
        sink.send(buf.split().freeze())
            .await
            .context(|| format!("COPY into {}", plan.target))?;
        sink.as_mut()
            .finish()
            .await
            .context(|| format!("COPY into {}", plan.target))?;
        let done = (rows as usize) < chunk_rows;
        progress::record_chunk(
            &tx,
            &cfg.mapping.progress_schema,
            &source_name,
            part.part,
            chunk_last.as_deref(),
            rows,
            done,
        )
        .await?;
        tx.commit()
            .await
            .context(|| format!("commit a chunk of {source_name}"))?;
        shared.snapshot_progress(&source_name, rows, &losses, started.elapsed())?;
        if let Some(k) = chunk_last {
            last = Some(k);
        }
        if done {
            return Ok(());
        }
    }
}

/// Whether an error is a client's failure to decode national text (lone UTF-16 surrogates):
/// the chunk is then re-read with national text as bytes.
pub fn is_utf16_decode_failure(e: &Error) -> bool {
    matches!(e, Error::Source { source, .. } if source.to_string().contains("UTF-16"))
}
