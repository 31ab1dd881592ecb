//! Test helpers: an in-process simulator with a fresh source database, a fresh target database on
//! the throwaway PostgreSQL cluster, configuration files, and the daemon (in-process or as the
//! real binary).
#![allow(dead_code)]

use mssql_sim::server::{start, SimConfig, SimServer};
use replicator::config::{self, Config, Environment};
use replicator::state::{TableRecord, TableState};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiberius::Client;
use tokio::net::TcpStream;
use tokio_util::compat::Compat;

pub const SA_PASSWORD: &str = "Sim_Pass_w0rd";
pub type Tds = Client<Compat<TcpStream>>;

/// A source (simulator database), a target database and a scratch directory.
pub struct Env {
    pub sim: SimServer,
    /// The simulator's backing PostgreSQL database (URL).
    pub backing: String,
    pub database: String,
    pub target_url: String,
    pub dir: PathBuf,
}

impl Env {
    /// A simulator with database `shop` (snapshot isolation and Change Tracking on) and an empty
    /// target database.
    pub async fn new(hint: &str) -> Env {
        Env::with_sim(hint, |_| {}).await
    }

    /// As [`Env::new`], with the simulator's configuration adjusted by `tweak` (TLS).
    pub async fn with_sim(hint: &str, tweak: impl FnOnce(&mut SimConfig)) -> Env {
        let backing = testkit::fresh_database(hint).await;
        let mut sim_config = SimConfig {
            ct_cleanup_interval: Duration::from_millis(200),
            cdc_polling_interval: Duration::from_millis(100),
            ..SimConfig::new(backing.clone(), SA_PASSWORD)
        };
        tweak(&mut sim_config);
        let sim = start(sim_config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        let target_url = testkit::fresh_database(&format!("{hint}_target")).await;
        let dir =
            std::env::temp_dir().join(format!("replicator-test-{hint}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let env = Env {
            sim,
            backing,
            database: "shop".into(),
            target_url,
            dir,
        };
        let mut c = mssql_sim::workload::connect(env.sim.addr, SA_PASSWORD, None)
            .await
            .unwrap();
        exec(&mut c, "CREATE DATABASE shop").await;
        exec(
            &mut c,
            "ALTER DATABASE shop SET ALLOW_SNAPSHOT_ISOLATION ON",
        )
        .await;
        exec(&mut c, "ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)").await;
        env
    }

    /// A session in the source database.
    pub async fn tds(&self) -> Tds {
        mssql_sim::workload::connect(self.sim.addr, SA_PASSWORD, Some(&self.database))
            .await
            .unwrap()
    }

    /// A PostgreSQL session in the database that holds the source database's tables (to do
    /// what no T-SQL can, such as setting the server's clock back).
    pub async fn source_pg(&self) -> tokio_postgres::Client {
        let backing = self.backing.rsplit('/').next().unwrap_or_default();
        let url = testkit::pg().url_for(&mssql_sim::server::pg_name_for(backing, &self.database));
        let c = testkit::connect(&url).await;
        c
    }

    /// A session in the target database.
    pub async fn pg(&self) -> tokio_postgres::Client {
        let c = testkit::connect(&self.target_url).await;
        c
    }

    /// Configuration text for this environment; `extra` is appended (more sections, tables).
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            r#"
[source]
host = "127.0.0.1"
port = {port}
database = "{db}"
user = "sa"
password_env = "TEST_MSSQL_PASSWORD"
tls = "disable"

[target]
url = "{url}"

[state]
dir = "{dir}/state"

[control]
socket = "{dir}/control.sock"

{extra}
"#,
            port = self.sim.addr.port(),
            db = self.database,
            url = self.target_url,
            dir = self.dir.display(),
        )
    }

    /// Parses configuration text with the test's secrets.
    pub fn config(&self, extra: &str) -> Config {
        config::parse(&self.config_text(extra), &TestEnv::default()).expect("valid config")
    }

    /// Writes the configuration to a file (for the binary).
    pub fn config_file(&self, extra: &str) -> PathBuf {
        let p = self.dir.join("replicator.toml");
        std::fs::write(&p, self.config_text(extra)).unwrap();
        p
    }
}

/// The test's environment for secrets.
#[derive(Default)]
pub struct TestEnv(pub HashMap<String, String>);

impl Environment for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "TEST_MSSQL_PASSWORD" => Some(SA_PASSWORD.into()),
            other => self.0.get(other).cloned(),
        }
    }
}

pub use testkit::exec;

/// The daemon running in this process.
pub struct Daemon {
    pub shared: Arc<replicator::daemon::Shared>,
    pub task: tokio::task::JoinHandle<Result<(), replicator::error::Error>>,
}

impl Daemon {
    pub fn start(config: Config) -> Daemon {
        // As `serve` does: a reader (`status`) or a previous run's last write may hold the file
        // for an instant.
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match replicator::state::Store::open(&config.state_dir) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("state store: {e}"),
            }
        };
        let shared = replicator::daemon::shared(config, store);
        let task = tokio::spawn(replicator::daemon::run(shared.clone()));
        Daemon { shared, task }
    }

    pub fn table(&self, name: &str) -> Option<TableRecord> {
        self.shared.store.table(name).unwrap()
    }

    /// Waits until every named table is in `state` (panics with the status on timeout, or at
    /// once when the daemon stopped).
    pub async fn wait_state(&self, tables: &[&str], state: TableState, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let recs: Vec<Option<TableRecord>> = tables.iter().map(|t| self.table(t)).collect();
            if recs
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| r.state == state))
            {
                return;
            }
            if self.task.is_finished() || Instant::now() > deadline {
                panic!("tables did not reach {state:?}: {:#?}", recs);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `f` holds.
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        mut f: impl FnMut(&Daemon) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !f(self) {
            if self.task.is_finished() || Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: {:#?}",
                    self.shared.store.tables().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the daemon and waits for every task it started (a re-snapshot in flight holds
    /// the store, which the next start in this process opens again).
    pub async fn stop(self) -> Result<(), replicator::error::Error> {
        self.shared.request_stop();
        let result = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("daemon stops within 30 s")
            .expect("daemon task");
        self.shared.lifecycle.tasks.close();
        tokio::time::timeout(Duration::from_secs(30), self.shared.lifecycle.tasks.wait())
            .await
            .expect("the daemon's tasks end within 30 s");
        result
    }
}

/// Polls an async condition until it holds or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// As [`target_rows`], `None` when the query fails.
pub async fn try_target_rows(
    pg: &tokio_postgres::Client,
    table: &str,
    columns: &[&str],
    order_by: &str,
) -> Option<Vec<Vec<Option<String>>>> {
    let cols: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({c})::text AS out_{i}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {order_by}",
        cols.join(", ")
    );
    let rows = pg.query(&sql, &[]).await.ok()?;
    Some(
        rows.iter()
            .map(|r| {
                (0..columns.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect()
            })
            .collect(),
    )
}

/// Every row of a target table rendered as text, ordered by `order_by`.
pub async fn target_rows(
    pg: &tokio_postgres::Client,
    table: &str,
    columns: &[&str],
    order_by: &str,
) -> Vec<Vec<Option<String>>> {
    let cols: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({c})::text AS out_{i}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {order_by}",
        cols.join(", ")
    );
    pg.query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..columns.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

/// Every row of a source query, each cell rendered as PostgreSQL's text output would show the
/// replicated value (independently of the replicator's converter).
pub async fn source_rows(c: &mut Tds, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_first_result()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| r.into_iter().map(render_cell).collect())
        .collect()
}

fn render_cell(c: tiberius::ColumnData<'static>) -> Option<String> {
    use tiberius::ColumnData as C;
    Some(match c {
        C::U8(v) => v?.to_string(),
        C::I16(v) => v?.to_string(),
        C::I32(v) => v?.to_string(),
        C::I64(v) => v?.to_string(),
        C::F32(v) => v?.to_string(),
        C::F64(v) => v?.to_string(),
        C::Bit(v) => {
            if v? {
                "true".into()
            } else {
                "false".into()
            }
        }
        C::String(v) => v?.into_owned(),
        C::Guid(v) => v?.hyphenated().to_string(),
        C::Binary(v) => format!(
            "\\x{}",
            v?.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        C::Numeric(v) => {
            let n = v?;
            let s = n.value().unsigned_abs().to_string();
            let scale = n.scale() as usize;
            let body = if scale == 0 {
                s
            } else {
                let s = format!("{:0>width$}", s, width = scale + 1);
                format!("{}.{}", &s[..s.len() - scale], &s[s.len() - scale..])
            };
            if n.value() < 0 {
                format!("-{body}")
            } else {
                body
            }
        }
        other => {
            let dt: Option<chrono::NaiveDateTime> =
                tiberius::FromSql::from_sql(&other).ok().flatten();
            let s = dt?.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            // PostgreSQL drops trailing zero fractions.
            let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
            s
        }
    })
}

/// Waits until the target table equals the source query's rows (both sorted), comparing every
/// value; panics with the first difference on timeout.
pub async fn wait_equal(
    c: &mut Tds,
    pg: &tokio_postgres::Client,
    source_sql: &str,
    target: &str,
    cols: &[&str],
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let mut want = source_rows(c, source_sql).await;
        // The target may not have a new column yet: not equal (yet), not an error.
        let mut got = try_target_rows(pg, target, cols, "1")
            .await
            .unwrap_or_default();
        want.sort();
        got.sort();
        if want == got {
            return;
        }
        if Instant::now() > deadline {
            let first = want.iter().zip(&got).find(|(a, b)| a != b);
            panic!(
                "{target} never equalled the source: {} rows vs {} rows; first difference {first:?}",
                want.len(),
                got.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy the test controls: forwards to `upstream`; `cut()` drops every connection;
/// `set_down(true)` refuses new ones until set back.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    down: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (d, g) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            down,
            generation,
        }
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Refuses (true) or accepts (false) new connections.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.cut();
        }
    }
}

/// The real binary as a child that dies with the test process (even when a test panics).
pub fn replicator_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_replicator"));
    cmd.env("TEST_MSSQL_PASSWORD", SA_PASSWORD);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Runs the real binary with `--config` and the test password in its environment.
pub fn replicator(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    replicator_command()
        .arg("--config")
        .arg(config)
        .args(args)
        .env("TEST_MSSQL_PASSWORD", SA_PASSWORD)
        .output()
        .expect("replicator runs")
}

/// `status --json` of the real binary, parsed.
pub fn status_json(config: &std::path::Path) -> serde_json::Value {
    let out = replicator(config, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

/// `replicator run` of the real binary in the background, its log in `<env.dir>/daemon.log`.
pub fn spawn_daemon(env: &Env, config: &std::path::Path) -> std::process::Child {
    let log = std::fs::File::create(env.dir.join("daemon.log")).unwrap();
    replicator_command()
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon starts")
}

/// Waits (60 s at most) until `status --json` shows `tables` tables, all streaming, and
/// returns that status.
pub async fn wait_all_streaming(config: &std::path::Path, tables: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status_json(config);
        // `running` (not `starting`): a daemon still taking its tables in would show the states
        // of its previous run.
        if s["daemon"]["state"] == "running"
            && s["tables"]
                .as_array()
                .is_some_and(|t| t.len() == tables && t.iter().all(|t| t["state"] == "streaming"))
        {
            return s;
        }
        assert!(Instant::now() < deadline, "never streaming: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops the real binary with SIGTERM and waits (30 s at most) for exit 0.
pub async fn stop_daemon(child: &mut std::process::Child) {
    // SAFETY: a plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "SIGTERM exits 0, got {code}");
}

/// SIGKILLs the real binary and reaps it.
pub fn kill_daemon(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Configuration text with the source's port replaced by `port` (a [`Proxy`] in between).
pub fn config_via(env: &Env, port: u16, extra: &str) -> PathBuf {
    let text = env.config_text(extra).replace(
        &format!("port = {}\n", env.sim.addr.port()),
        &format!("port = {port}\n"),
    );
    let path = env.dir.join("replicator-via-proxy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `replicator cutover --yes --json --timeout 60s` with `config`, which must succeed; its report.
pub fn cutover_succeeds(config: &std::path::Path) -> serde_json::Value {
    let out = replicator(config, &["cutover", "--yes", "--json", "--timeout", "60s"]);
    assert!(
        out.status.success(),
        "cutover: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the cutover report is JSON")
}
