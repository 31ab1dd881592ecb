//! SQL Server, the source (tiberius): connections, catalog discovery, snapshot reads, CT and CDC.
//!
//! Contract: every statement is built from quoted identifiers ([`crate::model::quote_tsql`]) and
//! bound parameters; nothing here knows which SQL Server it talks to.

pub mod cdc;
pub mod ct;
pub mod discover;
pub mod read;
pub mod split;
pub mod wire;

use crate::config::{SourceAuth, SourceConfig, SourceTls};
use crate::error::{Context, Error};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// How long SQL Server may take to send the next part of a reply before the session is given
/// up: a split-point scan or a large window's first row can legitimately take minutes.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// A connected SQL Server session.
pub type Tds = Client<Compat<TcpStream>>;

/// Opens a session to the configured database. Errors name the host, never the password.
pub async fn connect(cfg: &SourceConfig) -> Result<Tds, Error> {
    let mut c = Config::new();
    c.host(&cfg.host);
    c.port(cfg.port);
    c.database(&cfg.database);
    c.application_name("replicator");
    // tiberius gives up on a reply after 30 s by default. Windows have their own bound
    // (daemon::stream).
    c.command_timeout(Some(COMMAND_TIMEOUT));
    c.authentication(match cfg.auth {
        SourceAuth::Sql => AuthMethod::sql_server(&cfg.user, cfg.password.expose()),
        SourceAuth::Windows => AuthMethod::windows(&cfg.user, cfg.password.expose()),
    });
    match cfg.tls {
        SourceTls::Disable => c.encryption(EncryptionLevel::NotSupported),
        SourceTls::Require => {
            c.encryption(EncryptionLevel::Required);
            if cfg.trust_server_certificate {
                c.trust_cert();
            } else if let Some(ca) = &cfg.ca_file {
                c.trust_cert_ca(ca.display().to_string());
            }
        }
    }
    let target = format!("connect to SQL Server at {}:{}", cfg.host, cfg.port);
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| Error::Source {
            context: target.clone(),
            source: tiberius::error::Error::Io {
                kind: e.kind(),
                message: e.to_string(),
            },
        })?;
    let _ = tcp.set_nodelay(true);
    let mut client = Client::connect(c, tcp.compat_write())
        .await
        .context(|| format!("{target} as {} (database {})", cfg.user, cfg.database))?;
    // Every read of ours is a set read; keep SQL Server's defaults otherwise.
    client
        .simple_query("SET NOCOUNT ON; SET XACT_ABORT ON; SET LOCK_TIMEOUT 30000")
        .await
        .context(|| "session settings".into())?
        .into_results()
        .await
        .context(|| "session settings".into())?;
    Ok(client)
}

/// Runs a batch and returns its first result set.
pub async fn query_rows(tds: &mut Tds, sql: &str, what: &str) -> Result<Vec<tiberius::Row>, Error> {
    tds.simple_query(sql)
        .await
        .context(|| what.to_string())?
        .into_first_result()
        .await
        .context(|| what.to_string())
}

/// Runs one parameterised statement (`@P1`, `@P2`, ...) and returns its first result set.
pub async fn query_params(
    tds: &mut Tds,
    sql: String,
    params: &[&dyn tiberius::ToSql],
    what: &str,
) -> Result<Vec<tiberius::Row>, Error> {
    tds.query(sql, params)
        .await
        .context(|| what.to_string())?
        .into_first_result()
        .await
        .context(|| what.to_string())
}

/// Runs a batch to completion.
pub async fn execute(tds: &mut Tds, sql: &str, what: &str) -> Result<(), Error> {
    tds.simple_query(sql)
        .await
        .context(|| what.to_string())?
        .into_results()
        .await
        .context(|| what.to_string())?;
    Ok(())
}

/// Database-level facts the replicator depends on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatabaseInfo {
    /// `@@VERSION`'s first line.
    pub version: String,
    /// `ALLOW_SNAPSHOT_ISOLATION` is on.
    pub snapshot_isolation: bool,
    /// CDC is enabled for the database.
    pub cdc_enabled: bool,
    /// Change Tracking is enabled, with its retention in minutes.
    pub ct_retention_minutes: Option<i64>,
}

/// Reads [`DatabaseInfo`].
pub async fn database_info(tds: &mut Tds) -> Result<DatabaseInfo, Error> {
    let rows = query_rows(
        tds,
        "SELECT CAST(@@VERSION AS nvarchar(4000)), CAST(d.snapshot_isolation_state AS int), \
         CAST(d.is_cdc_enabled AS int), \
         (SELECT TOP (1) CAST(CASE c.retention_period_units WHEN 1 THEN c.retention_period \
             WHEN 2 THEN c.retention_period * 60 ELSE c.retention_period * 1440 END AS bigint) \
          FROM sys.change_tracking_databases c WHERE c.database_id = DB_ID()) \
         FROM sys.databases d WHERE d.database_id = DB_ID()",
        "read database settings",
    )
    .await?;
    let r = rows
        .first()
        .ok_or_else(|| Error::Fatal("sys.databases has no row for the current database".into()))?;
    let version: Option<&str> = r.try_get(0).ok().flatten();
    Ok(DatabaseInfo {
        version: version
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        snapshot_isolation: r.try_get::<i32, _>(1).ok().flatten() == Some(1),
        cdc_enabled: r.try_get::<i32, _>(2).ok().flatten() == Some(1),
        ct_retention_minutes: r.try_get::<i64, _>(3).ok().flatten(),
    })
}
