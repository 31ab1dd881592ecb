//! Workload and seeding: the sample database (`sys.sp_mssqlsim_seed`, `mssql-sim seed`) and a
//! DML driver (`mssql-sim load`), used by tests, the demo and the benchmarks.

pub mod load;
pub mod seed;

use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// A TDS client connection (plaintext, as the simulator serves).
pub type Tds = Client<Compat<TcpStream>>;

/// Logs in as `sa` to `server`, optionally into `database`. Errors name the server, never the password.
pub async fn connect(
    server: std::net::SocketAddr,
    sa_password: &str,
    database: Option<&str>,
) -> Result<Tds, String> {
    let mut c = Config::new();
    c.host(server.ip().to_string());
    c.port(server.port());
    c.authentication(AuthMethod::sql_server("sa", sa_password));
    c.encryption(EncryptionLevel::NotSupported);
    // Bulk statements (seeding, 20 MB values) may take longer than tiberius's 30 s default.
    c.command_timeout(None);
    if let Some(db) = database {
        c.database(db);
    }
    let tcp = TcpStream::connect(server)
        .await
        .map_err(|e| format!("connect to {server}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Client::connect(c, tcp.compat_write())
        .await
        .map_err(|e| format!("login to {server} as sa: {e}"))
}

/// Creates `database` if it does not exist and seeds the sample schema with `rows` orders;
/// returns the number of rows written over all tables.
pub async fn seed_database(
    server: std::net::SocketAddr,
    sa_password: &str,
    database: &str,
    rows: i64,
) -> Result<i64, String> {
    let mut c = connect(server, sa_password, None).await?;
    let quoted = database.replace(']', "]]");
    let literal = database.replace('\'', "''");
    c.simple_query(format!(
        "IF DB_ID(N'{literal}') IS NULL CREATE DATABASE [{quoted}]"
    ))
    .await
    .map_err(|e| format!("create database {database}: {e}"))?
    .into_results()
    .await
    .map_err(|e| format!("create database {database}: {e}"))?;
    c.simple_query(format!("USE [{quoted}]"))
        .await
        .map_err(|e| format!("use {database}: {e}"))?
        .into_results()
        .await
        .map_err(|e| format!("use {database}: {e}"))?;
    c.simple_query(format!("EXEC sys.sp_mssqlsim_seed @rows = {rows}"))
        .await
        .map_err(|e| format!("seed {database}: {e}"))?
        .into_results()
        .await
        .map_err(|e| format!("seed {database}: {e}"))?;
    let (a, b, o, l, x) = seed::counts(rows);
    Ok(a + b + o + l + x)
}
