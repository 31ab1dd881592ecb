//! PostgreSQL, the target (tokio-postgres): DDL, binary COPY, the progress tables, batched apply,
//! identity sync and deferred constraints.
//!
//! Contract: identifiers are always quoted ([`crate::model::quote_pg`]); a chunk's or a window's
//! progress is written in the same transaction as its rows.

pub mod apply;
pub mod ddl;
pub mod guard;
pub mod progress;

use crate::config::TargetConfig;
use crate::error::{Context, Error};
use tokio_postgres::Client;

/// Opens a session to the target. The password comes from the configuration, never the URL.
pub async fn connect(cfg: &TargetConfig) -> Result<Client, Error> {
    let mut pg: tokio_postgres::Config = cfg
        .url
        .parse()
        .map_err(|e| Error::Fatal(format!("target.url: {e}")))?;
    if let Some(p) = &cfg.password {
        pg.password(p.expose());
    }
    pg.application_name("replicator");
    let where_ = describe(&pg);
    let (client, conn) = match crate::tls::connect_pg(&pg, cfg).await {
        Ok(c) => c,
        Err(crate::tls::ConnectPgError::Postgres(e)) => {
            return Err(e).context(|| format!("connect to PostgreSQL at {where_}"))
        }
        Err(crate::tls::ConnectPgError::Tls(msg)) => {
            return Err(Error::Fatal(format!(
                "connect to PostgreSQL at {where_}: {msg}"
            )))
        }
    };
    tokio::spawn(conn);
    client
        .batch_execute("SET synchronous_commit = on; SET lock_timeout = '30s'; SET client_min_messages = warning")
        .await
        .context(|| "session settings".into())?;
    guard::mark_session(&client).await?;
    Ok(client)
}

/// `host:port/db as user`, for messages.
fn describe(pg: &tokio_postgres::Config) -> String {
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        pg.get_dbname().unwrap_or("?"),
        pg.get_user().unwrap_or("?")
    )
}
