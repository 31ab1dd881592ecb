//! What all sessions of one simulator share: the backing PostgreSQL and the database registry.
//!
//! Each T-SQL database is a PostgreSQL database named `<backing>__<name>`; the backing database
//! itself is `master`. The registry is `_sim.databases`, kept in every database so that
//! `sys.databases` answers everywhere.

use crate::catalog::{self, pg_quote_ident};
use crate::error::SqlError;
use std::collections::HashMap;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls};

/// State shared by all sessions of one server.
pub struct Shared {
    /// Connection settings of the backing database.
    pub backing: Config,
    backing_db: String,
    /// The `sa` password.
    pub sa_password: String,
    registry: Mutex<()>,
    /// READ_COMMITTED_SNAPSHOT per database (lower-cased name), as last read or set.
    rcsi: std::sync::Mutex<HashMap<String, bool>>,
    /// TLS offered in PRELOGIN, and whether it is required.
    pub tls: Option<(tokio_rustls::TlsAcceptor, bool)>,
    /// The account NTLM logins are checked against.
    pub ntlm: Option<crate::tds::ntlm::NtlmUser>,
}

/// The PostgreSQL database that holds T-SQL database `name` beside backing database `backing_db`.
pub fn pg_name_for(backing_db: &str, name: &str) -> String {
    let lower = name.to_lowercase();
    let simple = !lower.is_empty()
        && lower.len() <= 30
        && lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let suffix = if simple {
        lower
    } else {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in lower.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("x{h:016x}")
    };
    let base: String = backing_db.chars().take(28).collect();
    format!("{base}__{suffix}")
}

impl Shared {
    /// The state of a server whose backing database is `backing` (named `backing_db`).
    pub fn new(
        backing: Config,
        backing_db: String,
        sa_password: String,
        tls: Option<(tokio_rustls::TlsAcceptor, bool)>,
        ntlm: Option<crate::tds::ntlm::NtlmUser>,
    ) -> Shared {
        Shared {
            backing,
            backing_db,
            sa_password,
            registry: Mutex::new(()),
            rcsi: std::sync::Mutex::new(HashMap::new()),
            tls,
            ntlm,
        }
    }

    /// A new connection to PostgreSQL database `pg_name` on the backing server.
    pub async fn connect_pg(&self, pg_name: &str) -> Result<Client, SqlError> {
        let mut cfg = self.backing.clone();
        cfg.dbname(pg_name);
        cfg.application_name("mssql-sim");
        let (client, conn) = cfg.connect(NoTls).await.map_err(|e| {
            SqlError::internal(format!("connect to backing database {pg_name}: {e}"))
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Whether READ COMMITTED reads row versions (READ_COMMITTED_SNAPSHOT ON) in database `db`;
    /// `None` until a session of this server has read it.
    pub fn read_committed_snapshot(&self, db: &str) -> Option<bool> {
        self.rcsi.lock().ok()?.get(&db.to_lowercase()).copied()
    }

    /// Records the READ_COMMITTED_SNAPSHOT setting of `db`.
    pub fn set_read_committed_snapshot(&self, db: &str, on: bool) {
        if let Ok(mut m) = self.rcsi.lock() {
            m.insert(db.to_lowercase(), on);
        }
    }

    /// A connection to the backing database (`master`).
    pub(crate) async fn admin(&self) -> Result<Client, SqlError> {
        self.connect_pg(&self.backing_db).await
    }

    /// The PostgreSQL database that holds T-SQL database `tsql_name`.
    pub(crate) fn pg_name(&self, tsql_name: &str) -> String {
        if tsql_name.eq_ignore_ascii_case("master") {
            self.backing_db.clone()
        } else {
            pg_name_for(&self.backing_db, tsql_name)
        }
    }

    /// Every T-SQL database: name and id.
    pub(crate) async fn databases(&self, admin: &Client) -> Result<Vec<(String, i32)>, SqlError> {
        let rows = admin
            .query(
                "SELECT name, database_id FROM _sim.databases ORDER BY database_id",
                &[],
            )
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Runs `sql` against the registry copy of every database (master included), so that
    /// `sys.databases` agrees everywhere. Stops at the first failure and returns it.
    async fn in_every_database(
        &self,
        names: &[String],
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), SqlError> {
        for n in names {
            let client = self.connect_pg(&self.pg_name(n)).await?;
            client
                .execute(sql, params)
                .await
                .map_err(|e| SqlError::from_pg(&e))?;
        }
        Ok(())
    }

    /// The T-SQL name (as created) and PostgreSQL name of database `db`.
    pub async fn resolve_database(&self, db: &str) -> Result<(String, String), SqlError> {
        if db.eq_ignore_ascii_case("master") {
            return Ok(("master".into(), self.backing_db.clone()));
        }
        let admin = self.admin().await?;
        let row = admin
            .query_opt(
                "SELECT name FROM _sim.databases WHERE lower(name) = lower($1)",
                &[&db],
            )
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        match row {
            Some(r) => {
                let name: String = r.get(0);
                let pg = self.pg_name(&name);
                Ok((name, pg))
            }
            None => Err(SqlError::new(
                911,
                16,
                format!(
                    "Database '{db}' does not exist. Make sure that the name is entered correctly."
                ),
            )),
        }
    }

    /// CREATE DATABASE: a new PostgreSQL database with the simulator's catalog.
    pub async fn create_database(&self, name: &str) -> Result<(), SqlError> {
        let _guard = self.registry.lock().await;
        let admin = self.admin().await?;
        let all = self.databases(&admin).await?;
        if all.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            || name.eq_ignore_ascii_case("master")
        {
            return Err(SqlError::new(
                1801,
                16,
                format!("Database '{name}' already exists. Choose a different database name."),
            ));
        }
        let id = all.iter().map(|(_, i)| *i).max().unwrap_or(4).max(4) + 1;
        let pg = self.pg_name(name);
        // A leftover of a database whose registration never completed is replaced.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", pg_quote_ident(&pg)))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", pg_quote_ident(&pg)))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        let client = self.connect_pg(&pg).await?;
        catalog::init_database(&client, name, id, &all).await?;
        let existing: Vec<String> = all.into_iter().map(|(n, _)| n).collect();
        self.in_every_database(
            &existing,
            "INSERT INTO _sim.databases (name, database_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &id],
        )
        .await
    }

    /// DROP DATABASE.
    pub async fn drop_database(&self, name: &str) -> Result<(), SqlError> {
        let _guard = self.registry.lock().await;
        let (real, pg) = self.resolve_database(name).await?;
        if real == "master" {
            return Err(SqlError::new(
                3708,
                16,
                "Cannot drop the database 'master' because it is a system database.".into(),
            ));
        }
        let admin = self.admin().await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE {} WITH (FORCE)",
                pg_quote_ident(&pg)
            ))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        let remaining: Vec<String> = self
            .databases(&admin)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| *n != real)
            .collect();
        self.in_every_database(
            &remaining,
            "DELETE FROM _sim.databases WHERE name = $1",
            &[&real],
        )
        .await
    }

    /// `ALTER DATABASE d SET CHANGE_TRACKING = ON (CHANGE_RETENTION = n DAYS|HOURS|MINUTES,
    /// AUTO_CLEANUP = ON|OFF)` or `= OFF`, applied in that database.
    async fn set_change_tracking(&self, db: &str, text: &str) -> Result<(), SqlError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 2).copied())
        };
        let enable = match after("CHANGE_TRACKING") {
            Some("ON") => true,
            Some("OFF") => false,
            other => {
                return Err(SqlError::new(
                    102,
                    15,
                    format!(
                        "Incorrect syntax near '{}'.",
                        other.unwrap_or("CHANGE_TRACKING")
                    ),
                ))
            }
        };
        let retention = match words.iter().position(|w| *w == "CHANGE_RETENTION") {
            Some(i) => {
                let n: i32 = words
                    .get(i + 2)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        SqlError::new(102, 15, "CHANGE_RETENTION needs a number".into())
                    })?;
                let unit = words.get(i + 3).copied().unwrap_or("DAYS");
                let minutes = match unit {
                    "MINUTES" | "MINUTE" => n,
                    "HOURS" | "HOUR" => n * 60,
                    "DAYS" | "DAY" => n * 1440,
                    other => {
                        return Err(SqlError::new(
                            102,
                            15,
                            format!("Incorrect syntax near '{other}'."),
                        ))
                    }
                };
                let unit = if unit.ends_with('S') {
                    unit.to_string()
                } else {
                    format!("{unit}S")
                };
                Some((minutes, format!("{n} {unit}")))
            }
            None => None,
        };
        let auto = after("AUTO_CLEANUP").map(|v| v == "ON");
        let client = self.connect_pg(&self.pg_name(db)).await?;
        client
            .batch_execute(&format!(
                "SET sim.database = {}",
                crate::value::pg_quote(db)
            ))
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        client
            .execute(
                "SELECT _sim.ct_set_database($1, $2, $3, $4)",
                &[
                    &enable,
                    &retention.as_ref().map(|r| r.0),
                    &retention.as_ref().map(|r| r.1.clone()),
                    &auto,
                ],
            )
            .await
            .map_err(|e| SqlError::from_pg(&e))?;
        Ok(())
    }

    /// Sets a flag of database `db` in the registry copy of every database (sys.databases).
    pub async fn set_database_flag(
        &self,
        db: &str,
        column: &str,
        on: bool,
    ) -> Result<(), SqlError> {
        let _guard = self.registry.lock().await;
        let admin = self.admin().await?;
        let all: Vec<String> = self
            .databases(&admin)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        self.in_every_database(
            &all,
            &format!("UPDATE _sim.databases SET {column} = $1 WHERE lower(name) = lower($2)"),
            &[&on, &db],
        )
        .await
    }

    /// ALTER DATABASE ... SET option: snapshot isolation and READ_COMMITTED_SNAPSHOT are kept;
    /// other options are accepted and ignored.
    pub async fn alter_database(&self, db: &str, words: &[String]) -> Result<(), SqlError> {
        let (real, _) = self.resolve_database(db).await?;
        let text = words.join(" ").to_uppercase();
        let (column, on) = if text.contains("ALLOW_SNAPSHOT_ISOLATION") {
            (
                "snapshot_isolation",
                text.contains("ALLOW_SNAPSHOT_ISOLATION ON"),
            )
        } else if text.contains("READ_COMMITTED_SNAPSHOT") {
            (
                "read_committed_snapshot",
                text.contains("READ_COMMITTED_SNAPSHOT ON"),
            )
        } else if text.contains("CHANGE_TRACKING") {
            return self.set_change_tracking(&real, &text).await;
        } else {
            return Ok(());
        };
        self.set_database_flag(&real, column, on).await?;
        if column == "read_committed_snapshot" {
            self.set_read_committed_snapshot(&real, on);
        }
        Ok(())
    }
}
