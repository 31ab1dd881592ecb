//! What the bench binaries share: process readings from /proc, connections, and a simulator
//! child process with a `bench` database (snapshot isolation and Change Tracking on).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The simulator's `sa` password in the benches.
pub const PASSWORD: &str = "Bench_pw_1";

/// A numeric field of /proc/PID/status in KiB (`VmHWM:`, `VmRSS:`).
pub fn proc_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User + system CPU seconds of a process so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The machine's busy and total CPU seconds since boot (all cores, from /proc/stat): the
/// difference of two readings says how much of the machine a phase used.
pub fn machine_cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    ((total - idle) / 100.0, total / 100.0)
}

/// A PostgreSQL session.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    testkit::connect(url).await
}

/// A binary next to this one (release builds of mssql-sim and replicator).
pub fn sibling(name: &str) -> std::path::PathBuf {
    std::env::current_exe()
        .expect("current exe")
        .with_file_name(name)
}

/// Runs a T-SQL batch on the simulator.
pub async fn tsql(port: u16, db: Option<&str>, sql: &str) {
    let mut c =
        mssql_sim::workload::connect(format!("127.0.0.1:{port}").parse().unwrap(), PASSWORD, db)
            .await
            .expect("login");
    testkit::exec(&mut c, sql).await;
}

/// Starts the release simulator on a free port over `backing`, waits until it listens, and
/// creates database `bench` with snapshot isolation and Change Tracking on.
pub async fn start_sim_with_bench_db(backing: &str) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Command::new(sibling("mssql-sim"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backing",
            backing,
        ])
        .env("MSSQL_SIM_SA_PASSWORD", PASSWORD)
        // BENCH_SIM_LOG=mssql_sim=trace shows the statements as the simulator rewrote them.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SIM_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .expect("start mssql-sim (cargo build --release -p mssql-sim -p replicator -p bench)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mssql-sim did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tsql(port, None, "CREATE DATABASE bench").await;
    tsql(
        port,
        None,
        "ALTER DATABASE bench SET ALLOW_SNAPSHOT_ISOLATION ON",
    )
    .await;
    tsql(
        port,
        None,
        "ALTER DATABASE bench SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS)",
    )
    .await;
    (sim, port)
}

/// Creates `dbo.ref` (Change Tracking on) in the simulator's `bench` database and fills it with
/// `rows` rows in bulk through the backing database (values in the simulator's stored form).
pub async fn load_ref(port: u16, backing_db: &str, rows: i64) {
    tsql(
        port,
        Some("bench"),
        "CREATE TABLE dbo.ref (id bigint NOT NULL PRIMARY KEY, a int NOT NULL, b smallint NOT NULL, amount decimal(18,2) NOT NULL, \
         name nvarchar(100) NOT NULL, created datetime2 NOT NULL, updated datetime2 NULL, flag bit NOT NULL, g uniqueidentifier NOT NULL); \
         ALTER TABLE dbo.ref ENABLE CHANGE_TRACKING",
    )
    .await;
    // Filled in bulk through the backing database (values in the simulator's stored form).
    let source_pg = testkit::pg().url_for(&mssql_sim::server::pg_name_for(backing_db, "bench"));
    let direct = pg(&source_pg).await;
    let t = Instant::now();
    direct
        .batch_execute(&format!(
            "SET session_replication_role = replica; INSERT INTO dbo.ref SELECT i, (i * 7) % 1000000, (i % 30000)::smallint, \
             ((i % 100000) * 1.37)::numeric(18,2), 'customer name ' || i, \
             to_char(timestamp '2020-01-01' + i * interval '1 second', 'YYYY-MM-DD HH24:MI:SS') || '.1234560', \
             CASE WHEN i % 3 = 0 THEN NULL ELSE to_char(timestamp '2021-01-01' + i * interval '1 second', 'YYYY-MM-DD HH24:MI:SS') || '.7654320' END, \
             (i % 2)::smallint, md5(i::text)::uuid FROM generate_series(1, {}) AS i",
            rows
        ))
        .await
        .unwrap();
    // Settled, as a production table's rows are: hint bits set and frozen now, so neither the
    // first reader nor an autovacuum pays for the bulk load during the measurement.
    direct
        .batch_execute("VACUUM (FREEZE, ANALYZE) dbo.ref")
        .await
        .unwrap();
    direct.batch_execute("CHECKPOINT").await.unwrap();
    eprintln!("source: {} rows loaded in {:.1?}", rows, t.elapsed());
}

/// Writes a replicator configuration for the simulator's `bench` database on `port` and the
/// `target` URL into a fresh temporary directory named after `name` (its state and control
/// socket beside it), with `extra` appended (the `[replication]`, `[validation]` and
/// `[[tables]]` sections). Returns the directory and the configuration file.
pub fn replicator_config(name: &str, port: u16, target: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("replicator.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"bench\"\nuser = \"sa\"\npassword_env = \"BENCH_MSSQL_PASSWORD\"\ntls = \"disable\"\n\
             [target]\nurl = \"{target}\"\n[state]\ndir = \"{d}/state\"\n[control]\nsocket = \"{d}/control.sock\"\n{extra}",
            d = dir.display(),
        ),
    )
    .unwrap();
    (dir, config)
}

/// Starts the release `replicator run` on `config` (warnings on stderr).
pub fn spawn_replicator(config: &std::path::Path) -> Child {
    Command::new(sibling("replicator"))
        .args(["--config", &config.display().to_string(), "run"])
        .env("BENCH_MSSQL_PASSWORD", PASSWORD)
        // BENCH_LOG=info shows where the replicator's time goes.
        .env(
            "REPLICATOR_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn,tiberius=error".into()),
        )
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start replicator")
}

/// Waits until the target's progress table shows a table streaming (its snapshot done), calling
/// `each` every 20 ms meanwhile (a reading of the replicator's memory, say); panics if the
/// replicator exits first.
pub async fn wait_snapshot_done(
    target: &tokio_postgres::Client,
    repl: &mut Child,
    mut each: impl FnMut(),
) {
    loop {
        each();
        let streaming = target
            .query_opt(
                "SELECT 1 FROM replicator.table_progress WHERE phase = 'streaming'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .is_some();
        if streaming {
            return;
        }
        assert!(
            repl.try_wait().unwrap().is_none(),
            "replicator exited early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
