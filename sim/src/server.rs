//! The listener: accepts TDS connections and runs a [`Session`] for each, and the periodic
//! tasks (Change Tracking cleanup, the CDC capture job). What the sessions share is
//! [`crate::instance::Shared`].

use crate::catalog;
use crate::error::SqlError;
pub use crate::instance::{pg_name_for, Shared};
use crate::session::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_postgres::{Config, NoTls};

/// Settings of a simulator instance.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// URL of the backing PostgreSQL database (it becomes `master`).
    pub backing_url: String,
    /// Password of the `sa` login. Never logged.
    pub sa_password: String,
    /// How often Change Tracking's cleanup removes changes older than each database's retention
    /// (SQL Server's background task runs about every 30 minutes).
    pub ct_cleanup_interval: std::time::Duration,
    /// How often the CDC capture job moves committed changes into the change tables (SQL
    /// Server's default polling interval is 5 s).
    pub cdc_polling_interval: std::time::Duration,
    /// TLS inside PRELOGIN with this certificate; `None`: clients are answered NOT_SUP.
    pub tls: Option<SimTls>,
    /// The domain account Windows authentication (NTLM) accepts; `None`: integrated logins
    /// are refused as from an untrusted domain.
    pub ntlm: Option<crate::tds::ntlm::NtlmUser>,
}

/// The simulator's TLS: a PEM certificate chain and key, and whether clients must use it.
#[derive(Clone, Debug)]
pub struct SimTls {
    /// PEM certificate chain, leaf first.
    pub cert_pem: std::path::PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: std::path::PathBuf,
    /// Refuse clients that do not support encryption (SQL Server's Force Encryption answers
    /// ENCRYPT_REQ to them); otherwise they get a plaintext session.
    pub required: bool,
}

impl SimConfig {
    /// A configuration with the default cleanup interval (30 s).
    pub fn new(backing_url: impl Into<String>, sa_password: impl Into<String>) -> Self {
        SimConfig {
            backing_url: backing_url.into(),
            sa_password: sa_password.into(),
            ct_cleanup_interval: std::time::Duration::from_secs(30),
            cdc_polling_interval: std::time::Duration::from_secs(5),
            tls: None,
            ntlm: None,
        }
    }
}

/// Runs `sql` in every database every `every` until shutdown (Change Tracking cleanup, the CDC
/// capture job). A failure is logged and retried at the next tick; it never stops the server.
async fn periodic(
    shared: Arc<Shared>,
    every: std::time::Duration,
    sql: &'static str,
    what: &'static str,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(20)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let names = match shared.admin().await {
            Ok(admin) => match shared.databases(&admin).await {
                Ok(d) => d.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(task = what, error = %e.message, "cannot list databases");
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(task = what, error = %e.message, "backing database unreachable");
                continue;
            }
        };
        for n in names {
            let r = match shared.connect_pg(&shared.pg_name(&n)).await {
                Ok(c) => c
                    .batch_execute(&format!(
                        "SET sim.database = {}; {sql}",
                        crate::value::pg_quote(&n)
                    ))
                    .await
                    .map_err(|e| SqlError::from_pg(&e)),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(task = what, database = %n, error = %e.message, "periodic task failed");
            }
        }
    }
}

/// A running simulator.
pub struct SimServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Stops accepting connections (open sessions end with their clients).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Prepares the backing database (idempotent) and starts listening on `listen` (port 0: any).
pub async fn start(cfg: SimConfig, listen: SocketAddr) -> Result<SimServer, String> {
    let backing: Config = cfg
        .backing_url
        .parse()
        .map_err(|e| format!("--backing is not a PostgreSQL URL: {e}"))?;
    let backing_db = backing.get_dbname().unwrap_or("postgres").to_string();
    let tls = match &cfg.tls {
        Some(t) => Some((
            crate::tds::tls::acceptor(&t.cert_pem, &t.key_pem)?,
            t.required,
        )),
        None => None,
    };
    let (client, conn) = backing
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to the backing PostgreSQL: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let initialised = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '_sim')",
            &[],
        )
        .await
        .map_err(|e| format!("backing PostgreSQL: {e}"))?
        .get::<_, bool>(0);
    if !initialised {
        catalog::init_database(&client, "master", 1, &[])
            .await
            .map_err(|e| format!("initialising the backing database: {}", e.message))?;
    }
    drop(client);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared::new(
        backing,
        backing_db,
        cfg.sa_password,
        tls,
        cfg.ntlm.clone(),
    ));
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(periodic(
        shared.clone(),
        cfg.ct_cleanup_interval,
        "SELECT _sim.ct_auto_cleanup(); SELECT CASE WHEN to_regclass('cdc.change_tables') IS NOT NULL THEN _sim.cdc_auto_cleanup() END",
        "change tracking and cdc cleanup",
        rx.clone(),
    ));
    tokio::spawn(periodic(
        shared.clone(),
        cfg.cdc_polling_interval,
        "SELECT CASE WHEN to_regclass('cdc.change_tables') IS NOT NULL THEN _sim.cdc_capture() END",
        "cdc capture",
        rx.clone(),
    ));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => break,
                accepted = listener.accept() => {
                    let Ok((socket, peer)) = accepted else { continue };
                    let _ = socket.set_nodelay(true);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = Session::new(shared).run(socket).await {
                            tracing::debug!(%peer, error = %e, "session ended with an error");
                        }
                    });
                }
            }
        }
    });
    tracing::info!(%addr, "mssql-sim listening");
    Ok(SimServer {
        addr,
        shutdown: tx,
        task,
    })
}
