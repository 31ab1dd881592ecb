//! Transactions: BEGIN/COMMIT/ROLLBACK/SAVE with SQL Server's nesting, isolation levels, and the
//! per-statement savepoint that undoes a failed statement alone.

use crate::catalog::{self};
use crate::error::SqlError;
use crate::tsql::parse::Isolation;
use std::sync::Arc;
use tokio_postgres::Client;

use super::*;

impl Session {
    pub(super) async fn ensure_txn(&mut self) -> Result<(), SqlError> {
        if self.trancount > 0 && !self.pg_txn_open {
            let level = self.pg_isolation().await?;
            self.pg()?
                .batch_execute(&format!("BEGIN ISOLATION LEVEL {level}"))
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
            self.pg_txn_open = true;
        }
        Ok(())
    }

    pub(super) async fn pg_isolation(&self) -> Result<&'static str, SqlError> {
        Ok(match self.isolation {
            Isolation::ReadUncommitted | Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
            Isolation::Snapshot => {
                let row = self
                    .pg()?
                    .query_opt("SELECT snapshot_isolation FROM _sim.databases WHERE lower(name) = lower($1)", &[&self.database])
                    .await
                    .map_err(|e| SqlError::from_pg(&e))?;
                let allowed: bool = row.map(|r| r.get(0)).unwrap_or(false);
                if !allowed {
                    return Err(SqlError::new(
                        3952,
                        16,
                        format!("Snapshot isolation transaction failed accessing database '{}' because snapshot isolation is not allowed in this database. Use ALTER DATABASE to allow snapshot isolation.", self.database),
                    ));
                }
                "REPEATABLE READ"
            }
        })
    }

    pub(super) async fn begin_tran(&mut self) -> Result<(), SqlError> {
        self.trancount += 1;
        if self.trancount == 1 {
            // The PostgreSQL transaction starts lazily with the first statement, so that
            // SET TRANSACTION ISOLATION LEVEL right after BEGIN TRAN still applies.
            self.pg_txn_open = false;
            self.savepoints.clear();
        }
        Ok(())
    }

    pub(super) async fn commit_tran(&mut self) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3902,
                16,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.".into(),
            ));
        }
        self.trancount -= 1;
        if self.trancount == 0 && self.pg_txn_open {
            self.pg_txn_open = false;
            self.pg()?
                .batch_execute("COMMIT")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(())
    }

    pub(super) async fn rollback_tran(&mut self, name: Option<&str>) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3903,
                16,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.".into(),
            ));
        }
        if let Some(n) = name {
            let n = n.to_lowercase();
            if self.savepoints.contains(&n) {
                if self.pg_txn_open {
                    self.pg()?
                        .batch_execute(&format!(
                            "ROLLBACK TO SAVEPOINT {}",
                            catalog::pg_ident(&format!("sp_{n}"))
                        ))
                        .await
                        .map_err(|e| SqlError::from_pg(&e))?;
                }
                return Ok(());
            }
        }
        self.trancount = 0;
        self.savepoints.clear();
        if self.pg_txn_open {
            self.pg_txn_open = false;
            self.pg()?
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(())
    }

    /// Runs PostgreSQL work for one statement: inside a transaction behind a savepoint, so that a
    /// failure undoes the statement alone.
    pub(super) async fn guarded<T, F, Fut>(&mut self, f: F) -> Result<T, SqlError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SqlError>>,
    {
        self.ensure_txn().await?;
        let in_txn = self.pg_txn_open;
        let client = self
            .pg
            .clone()
            .ok_or_else(|| SqlError::fatal("no backing connection".into()))?;
        if in_txn {
            client
                .batch_execute("SAVEPOINT _sim_stmt")
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        let result = f(client.clone()).await;
        if in_txn {
            match &result {
                Ok(_) => {
                    let _ = client.batch_execute("RELEASE SAVEPOINT _sim_stmt").await;
                }
                Err(e) if !e.ends_transaction => {
                    let _ = client
                        .batch_execute("ROLLBACK TO SAVEPOINT _sim_stmt")
                        .await;
                }
                Err(_) => {}
            }
        }
        result
    }
}
