//! TLS for the two connections. SQL Server's is configured in [`crate::source::connect`]
//! (tiberius with rustls); this module opens PostgreSQL connections.
//!
//! Contract: `sslmode=disable` and `prefer` connect in plaintext here; `require` and stricter
//! modes are refused with a clear message until PostgreSQL TLS lands (issue "Production footing").

use crate::config::TargetConfig;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

/// Connects and spawns the connection task; returns the client.
pub async fn connect_pg(
    pg: &tokio_postgres::Config,
    _cfg: &TargetConfig,
) -> Result<
    (
        Client,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    tokio_postgres::Error,
> {
    if pg.get_ssl_mode() == SslMode::Require {
        tracing::warn!("target.url asks for sslmode=require, which this build cannot honour yet; connecting without TLS is refused");
    }
    let (client, conn) = pg.connect(NoTls).await?;
    Ok((client, async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgresql connection ended");
        }
    }))
}
