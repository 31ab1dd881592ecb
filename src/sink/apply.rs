//! Set-based apply of a window's changes: rows are COPYed into a per-table staging table with
//! their operation and order, then one DELETE ... USING and one INSERT ... ON CONFLICT DO UPDATE
//! per table, inside the caller's transaction.
//!
//! Contract: the last change per key wins (collapsed by PostgreSQL from the staged order);
//! applying the same window twice gives the same result (idempotent); never row by row.

use super::copy;
use crate::convert::TablePlan;
use crate::error::{Context, Error};
use crate::model::{quote_pg, Value};
use bytes::BytesMut;
use futures_util::SinkExt;
use std::collections::HashMap;
use tokio_postgres::Transaction;

/// Staging tables of one connection (temporary tables live as long as the session).
#[derive(Default)]
pub struct Stages {
    created: HashMap<String, (String, usize)>,
}

/// A staged operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Insert or update the whole row.
    Upsert,
    /// Delete the key.
    Delete,
}

/// Writes staged rows of one table into a COPY buffer.
pub struct StageWriter {
    /// The binary COPY buffer.
    pub buf: BytesMut,
    ncols: usize,
    seq: i64,
    /// Rows staged.
    pub rows: u64,
}

impl StageWriter {
    /// A writer for a table of `ncols` target columns.
    pub fn new(ncols: usize) -> StageWriter {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        copy::header(&mut buf);
        StageWriter {
            buf,
            ncols,
            seq: 0,
            rows: 0,
        }
    }

    /// Stages one change: the whole row for an upsert; for a delete, `values` holds the key
    /// values at the key positions and NULL elsewhere.
    pub fn push(&mut self, op: Op, values: &[Value]) {
        debug_assert_eq!(values.len(), self.ncols);
        copy::row_start(&mut self.buf, self.ncols + 2);
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
    }
}

impl Stages {
    /// The staging table for `plan`, created in this session on first use (and recreated when
    /// the table's columns changed).
    async fn stage_for(&mut self, tx: &Transaction<'_>, plan: &TablePlan) -> Result<String, Error> {
        let key = plan.target.to_string();
        let n = self.created.len();
        if let Some((name, ncols)) = self.created.get(&key) {
            if *ncols == plan.columns.len() {
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
        Ok(name)
    }

    /// Forgets the staging tables (after a reconnect, the session's temporary tables are gone).
    pub fn reset(&mut self) {
        self.created.clear();
    }

    /// Applies the staged changes of one table; returns (rows deleted, rows upserted).
    /// `collapse` is needed when a key may be staged more than once (CDC).
    pub async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        plan: &TablePlan,
        mut writer: StageWriter,
        collapse: bool,
    ) -> Result<(u64, u64), Error> {
        if writer.rows == 0 {
            return Ok((0, 0));
        }
        let stage = self.stage_for(tx, plan).await?;
        let ctx = || format!("apply changes to {}", plan.target);
        let cols: Vec<String> = plan.columns.iter().map(|c| quote_pg(&c.target)).collect();
        let sink = tx
            .copy_in(&format!(
                "COPY pg_temp.{stage} ({}, __op, __seq) FROM STDIN (FORMAT binary)",
                cols.join(", ")
            ))
            .await
            .context(ctx)?;
        futures_util::pin_mut!(sink);
        copy::trailer(&mut writer.buf);
        sink.send(writer.buf.split().freeze()).await.context(ctx)?;
        sink.as_mut().finish().await.context(ctx)?;
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
