//! Test helpers: an in-process simulator on a fresh backing database, and tiberius clients.
#![allow(dead_code)]

use mssql_sim::server::{start, SimConfig, SimServer};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

pub const SA_PASSWORD: &str = "Sim_Pass_w0rd";

pub type Tds = Client<Compat<TcpStream>>;

/// A simulator on a fresh backing database, and that database's name (to reach the PostgreSQL
/// databases the simulator creates beside it, via `mssql_sim::server::pg_name_for`).
pub async fn sim_with_backing(hint: &str) -> (SimServer, String) {
    sim_configured(hint, |_| {}).await
}

/// As [`sim_with_backing`], with the configuration adjusted by `tweak` (TLS, NTLM).
pub async fn sim_configured(hint: &str, tweak: impl FnOnce(&mut SimConfig)) -> (SimServer, String) {
    let backing = testkit::fresh_database(hint).await;
    let name = backing.rsplit('/').next().unwrap_or_default().to_string();
    let mut config = SimConfig {
        ct_cleanup_interval: std::time::Duration::from_millis(200),
        cdc_polling_interval: std::time::Duration::from_millis(100),
        ..SimConfig::new(backing, SA_PASSWORD)
    };
    tweak(&mut config);
    let server = start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    (server, name)
}

/// A simulator serving a fresh backing database on a free loopback port.
pub async fn sim(hint: &str) -> SimServer {
    sim_with_backing(hint).await.0
}

pub fn config(server: &SimServer, password: &str, database: Option<&str>) -> Config {
    let mut c = Config::new();
    c.host("127.0.0.1");
    c.port(server.addr.port());
    c.authentication(AuthMethod::sql_server("sa", password));
    c.encryption(EncryptionLevel::NotSupported);
    if let Some(db) = database {
        c.database(db);
    }
    c
}

pub async fn connect_with(
    server: &SimServer,
    password: &str,
    database: Option<&str>,
) -> tiberius::Result<Tds> {
    connect_config(config(server, password, database)).await
}

/// A client for `cfg`, over TCP to its address.
pub async fn connect_config(cfg: Config) -> tiberius::Result<Tds> {
    let tcp = TcpStream::connect(cfg.get_addr()).await?;
    tcp.set_nodelay(true)?;
    Client::connect(cfg, tcp.compat_write()).await
}

pub async fn connect(server: &SimServer) -> Tds {
    connect_with(server, SA_PASSWORD, None)
        .await
        .expect("login as sa")
}

/// Runs a batch and returns the first result set's rows.
pub async fn rows(c: &mut Tds, sql: &str) -> Vec<tiberius::Row> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_first_result()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub use testkit::exec;

/// The SQL Server error (number, message) of a failed batch.
pub async fn server_error(c: &mut Tds, sql: &str) -> (u32, String) {
    let r = match c.simple_query(sql).await {
        Ok(stream) => stream.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(tiberius::error::Error::Server(e)) => (e.code(), e.message().to_string()),
        Err(e) => panic!("unexpected error kind from {sql}: {e}"),
    }
}

/// The SQL Server error number of a failed batch.
pub async fn error_number(c: &mut Tds, sql: &str) -> u32 {
    server_error(c, sql).await.0
}

/// Runs FreeTDS `tsql` as `sa` with `args` (server selection) and `env`, feeding it `script`;
/// its output once it exits.
pub async fn run_tsql(
    args: Vec<String>,
    env: Vec<(String, String)>,
    script: String,
) -> std::process::Output {
    use std::io::Write;
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("tsql")
            .args(&args)
            .args(["-U", "sa", "-P", SA_PASSWORD])
            .envs(env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect(
                "FreeTDS tsql must be installed (apt-get install freetds-bin; .ci/run does it)",
            );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}
