//! Set-based apply of a window's changes: rows are COPYed into a per-table staging table with
//! their operation and order, then one DELETE ... USING and one INSERT ... ON CONFLICT DO UPDATE
//! per table, inside the caller's transaction.
//!
//! Memory is bounded: staged rows stream to PostgreSQL in 1 MiB pieces while the source is read.
//!
//! Contract: the last change per key wins (collapsed by PostgreSQL from the staged order);
//! applying the same window twice gives the same result (idempotent); never row by row.

use crate::convert::copy;
use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::model::{quote_pg, Value};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use tokio_postgres::{CopyInSink, Transaction};

/// Staging tables of one connection (temporary tables live as long as the session).
#[derive(Default)]
pub struct Stages {
    created: HashMap<String, (String, usize)>,
    /// Staging tables holding rows in the open transaction (emptied before their next use).
    used: HashSet<String>,
}

/// A staged operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert or update the whole row.
    Upsert,
    /// Delete the key.
    Delete,
}

/// Bytes buffered before they are sent to PostgreSQL: memory per window stays bounded by this,
/// however many changes the window holds.
const PIECE: usize = 1 << 20;

/// Stages one table's changes inside one target transaction: rows are encoded into a binary COPY
/// that is streamed to the staging table in pieces while the source is still being read, so
/// PostgreSQL works in parallel and memory stays bounded. [`StageWriter::apply`] ends it.
pub struct StageWriter<'a, 't> {
    tx: &'a Transaction<'t>,
    stages: &'a mut Stages,
    plan: &'a TablePlan,
    buf: BytesMut,
    sink: Option<Pin<Box<CopyInSink<Bytes>>>>,
    stage: Option<String>,
    seq: i64,
    /// Rows staged.
    pub rows: u64,
}

impl Stages {
    /// A writer for `plan`'s changes in `tx`; nothing is sent before the first row.
    pub fn writer<'a, 't>(
        &'a mut self,
        tx: &'a Transaction<'t>,
        plan: &'a TablePlan,
    ) -> StageWriter<'a, 't> {
        StageWriter {
            tx,
            stages: self,
            plan,
            buf: BytesMut::new(),
            sink: None,
            stage: None,
            seq: 0,
            rows: 0,
        }
    }

    /// Call at the start of each target transaction: the staging tables are empty again
    /// (`ON COMMIT DELETE ROWS`, or rolled back).
    pub fn begin(&mut self) {
        self.used.clear();
    }

    /// The staging table for `plan`, created in this session on first use (and recreated when
    /// the table's columns changed), empty.
    async fn stage_for(&mut self, tx: &Transaction<'_>, plan: &TablePlan) -> Result<String, Error> {
        let key = plan.target.to_string();
        let n = self.created.len();
        if let Some((name, ncols)) = self.created.get(&key) {
            if *ncols == plan.columns.len() {
                if !self.used.insert(name.clone()) {
                    // Applied before in this transaction: its rows are still there.
                    tx.batch_execute(&format!("TRUNCATE pg_temp.{name}"))
                        .await
                        .context(|| format!("empty the staging table of {}", plan.target))?;
                }
                return Ok(name.clone());
            }
        }
        let name = match self.created.get(&key) {
            Some((name, _)) => name.clone(),
            None => format!("replicator_stage_{n}"),
        };
        let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
        let sql = format!(
            "DROP TABLE IF EXISTS pg_temp.{name};
             CREATE TEMP TABLE {name} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA;
             ALTER TABLE pg_temp.{name} ADD COLUMN __op \"char\" NOT NULL, ADD COLUMN __seq bigint NOT NULL;",
            cols.join(", "),
            plan.target.sql()
        );
        tx.batch_execute(&sql)
            .await
            .context(|| format!("create the staging table of {}", plan.target))?;
        self.created.insert(key, (name.clone(), plan.columns.len()));
        self.used.insert(name.clone());
        Ok(name)
    }
}

impl StageWriter<'_, '_> {
    /// Stages one change: the whole row for an upsert; for a delete, `values` holds the key
    /// values at the key positions and NULL elsewhere. Sends a piece when one is full.
    pub async fn push(&mut self, op: Op, values: &[Value]) -> Result<(), Error> {
        let ncols = self.plan.columns.len();
        debug_assert_eq!(values.len(), ncols);
        copy::row_start(&mut self.buf, ncols + 2);
        for v in values {
            copy::field(&mut self.buf, v);
        }
        let code = match op {
            Op::Upsert => b'U',
            Op::Delete => b'D',
        };
        // "char" is one byte in binary form.
        bytes::BufMut::put_i32(&mut self.buf, 1);
        bytes::BufMut::put_u8(&mut self.buf, code);
        self.seq += 1;
        copy::field(&mut self.buf, &Value::I64(self.seq));
        self.rows += 1;
        if self.buf.len() >= PIECE {
            self.send_piece().await?;
        }
        Ok(())
    }

    fn ctx(&self) -> impl FnOnce() -> String {
        let t = self.plan.target.to_string();
        move || format!("stage changes of {t}")
    }

    /// Sends what is buffered, opening the COPY on first use.
    async fn send_piece(&mut self) -> Result<(), Error> {
        if self.sink.is_none() {
            let stage = self.stages.stage_for(self.tx, self.plan).await?;
            let cols: Vec<String> = self
                .plan
                .columns
                .iter()
                .map(|c| quote_pg(&c.target))
                .collect();
            let sink = self
                .tx
                .copy_in(&format!(
                    "COPY pg_temp.{stage} ({}, __op, __seq) FROM STDIN (FORMAT binary)",
                    cols.join(", ")
                ))
                .await
                .context(self.ctx())?;
            self.sink = Some(Box::pin(sink));
            self.stage = Some(stage);
            let mut head = BytesMut::with_capacity(19 + self.buf.len());
            copy::header(&mut head);
            head.unsplit(self.buf.split());
            self.buf = head;
        }
        let piece = self.buf.split().freeze();
        let ctx = self.ctx();
        if let Some(sink) = self.sink.as_mut() {
            sink.send(piece).await.context(ctx)?;
        }
        Ok(())
    }

    /// Ends the staging and applies the table's changes; returns (rows deleted, rows upserted).
    /// `collapse` is needed when a key may be staged more than once (CDC, backfills): the last
    /// staged change per key wins. Idempotent for a replayed window.
    pub async fn apply(mut self, collapse: bool) -> Result<(u64, u64), Error> {
        if self.rows == 0 {
            return Ok((0, 0));
        }
        copy::trailer(&mut self.buf);
        self.send_piece().await?;
        let ctx = self.ctx();
        let (Some(mut sink), Some(stage)) = (self.sink.take(), self.stage.take()) else {
            return Err(Error::Fatal("staging ended without a COPY".into()));
        };
        sink.as_mut().finish().await.context(ctx)?;
        let plan = self.plan;
        let tx = self.tx;
        let ctx = || format!("apply changes to {}", plan.target);
        let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
        let keys: Vec<String> = plan.key_columns().map(|c| quote_pg(&c.target)).collect();
        let source = if collapse {
            format!(
                "(SELECT DISTINCT ON ({k}) * FROM pg_temp.{stage} ORDER BY {k}, __seq DESC)",
                k = keys.join(", ")
            )
        } else {
            format!("pg_temp.{stage}")
        };
        let join: Vec<String> = keys.iter().map(|k| format!("t.{k} = d.{k}")).collect();
        let deleted = tx
            .execute(
                &format!(
                    "DELETE FROM {} AS t USING {source} AS d WHERE d.__op = 'D' AND {}",
                    plan.target.sql(),
                    join.join(" AND ")
                ),
                &[],
            )
            .await
            .context(ctx)?;
        let non_key: Vec<String> = plan
            .columns
            .iter()
            .filter(|c| !c.key)
            .map(|c| format!("{q} = EXCLUDED.{q}", q = quote_pg(&c.target)))
            .collect();
        let action = if non_key.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", non_key.join(", "))
        };
        let upserted = tx
            .execute(
                &format!(
                    "INSERT INTO {t} ({c}) SELECT {c} FROM {source} AS u WHERE u.__op <> 'D' ON CONFLICT ({k}) {action}",
                    t = plan.target.sql(),
                    c = cols.join(", "),
                    k = keys.join(", ")
                ),
                &[],
            )
            .await
            .context(ctx)?;
        Ok((deleted, upserted))
    }
}
