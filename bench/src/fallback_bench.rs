//! `fallback-bench`: the way back after `cutover --fallback`. A workload of 70/20/10
//! update/insert/delete changes (10 per PostgreSQL transaction) runs on the target at each
//! offered rate while the release `replicator run` carries it to the simulator; marker rows
//! measure the lag from the PostgreSQL commit to visible at SQL Server. Next to it, what the
//! simulator accepts from a plain bulk writer (multi-row INSERTs over TDS) in the same run: the
//! limit on this machine. Then `replicator rollback` with 10,000 changes pending, and with none.

mod common;
mod load;

use clap::Parser;
use common::{pg, tsql};
use load::percentile;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmarks the fallback's apply rate and lag, and rollback's downtime")]
struct Args {
    /// Offered change rates on PostgreSQL (changes/s), comma separated.
    #[arg(long, default_value = "1000,5000", value_delimiter = ',')]
    rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Rows in the table before the run.
    #[arg(long, default_value_t = 50_000)]
    rows: i64,
    /// Changes pending when the first rollback starts.
    #[arg(long, default_value_t = 10_000)]
    pending: u64,
    /// Load connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

const MARKER_BASE: i64 = 1_000_000_000_000;

/// One PostgreSQL transaction of 10 changes on the target table: 7 updates, 2 inserts, 1 delete.
const TXN: &str = "WITH u AS (UPDATE public.ev SET a = a + 1, amount = amount + 0.01, name = 'updated ' || id WHERE id = ANY($1) RETURNING 1), \
  i AS (INSERT INTO public.ev (id, a, amount, name, ts, g) SELECT x, 1, 1.5, 'inserted ' || x, '2024-05-01 10:00:00.123456', md5(x::text)::uuid FROM unnest($2::bigint[]) AS x RETURNING 1), \
  d AS (DELETE FROM public.ev WHERE id = ANY($3) RETURNING 1) SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM i) + (SELECT count(*) FROM d)";

/// A migrated, cut-over table with the fallback running.
struct Setup {
    sim: Child,
    port: u16,
    config: PathBuf,
    source_url: String,
    target_url: String,
    fallback: Child,
}

fn replicator(config: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(common::sibling("replicator"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("BENCH_MSSQL_PASSWORD", common::PASSWORD)
        .output()
        .expect("replicator runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "replicator {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rows_applied(config: &std::path::Path) -> u64 {
    replicator(config, &["status", "--json"])["fallback"]["rows_applied"]
        .as_u64()
        .unwrap_or(0)
}

async fn setup(name: &str, rows: i64) -> Setup {
    let backing = testkit::fresh_database(name).await;
    let backing_db = backing.rsplit('/').next().unwrap().to_string();
    let target_url = testkit::fresh_database(&format!("{name}_target")).await;
    let (sim, port) = common::start_sim_with_bench_db(&backing).await;
    tsql(port, Some("bench"), "CREATE TABLE dbo.ev (id bigint NOT NULL PRIMARY KEY, a int NOT NULL, amount decimal(18,2) NOT NULL, \
        name nvarchar(100) NOT NULL, ts datetime2(6) NOT NULL, g uniqueidentifier NOT NULL); ALTER TABLE dbo.ev ENABLE CHANGE_TRACKING").await;
    let source_url = testkit::pg().url_for(&mssql_sim::server::pg_name_for(&backing_db, "bench"));
    pg(&source_url)
        .await
        .batch_execute(&format!(
            "SET session_replication_role = replica; INSERT INTO dbo.ev SELECT i, i % 1000, (i % 10000) * 1.5, 'row ' || i, \
             '2024-01-01 00:00:00.000000', md5(i::text)::uuid FROM generate_series(1, {rows}) AS i; ANALYZE dbo.ev; RESET session_replication_role"
        ))
        .await
        .unwrap();
    let (_, config) = common::replicator_config(
        name,
        port,
        &target_url,
        "[replication]\npoll_interval = \"100ms\"\n[[tables]]\nsource = \"dbo.ev\"\n",
    );
    let tpg = pg(&target_url).await;
    let mut repl = common::spawn_replicator(&config);
    common::wait_snapshot_done(&tpg, &mut repl, || {}).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while replicator(&config, &["status", "--json"])["tables"][0]["state"] != "streaming" {
        assert!(Instant::now() < deadline, "the table never streamed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = replicator(
        &config,
        &[
            "cutover",
            "--yes",
            "--json",
            "--fallback",
            "--timeout",
            "300s",
        ],
    );
    assert_eq!(report["ok"], true, "{report:#}");
    let _ = repl.wait();
    let fallback = common::spawn_replicator(&config);
    Setup {
        sim,
        port,
        config,
        source_url,
        target_url,
        fallback,
    }
}

/// Runs `replicator rollback` and prints its downtime and parts, after `what`.
fn rollback(config: &std::path::Path, what: &str) {
    let report = replicator(
        config,
        &["rollback", "--yes", "--json", "--timeout", "300s"],
    );
    assert_eq!(report["ok"], true, "{report:#}");
    let part = |k: &str| report["parts"][k].as_f64().unwrap_or(f64::NAN);
    let t = &report["tables"][0];
    println!(
        "{what}: downtime {:.2} s (fence {:.2}, drain {:.2}, validate {:.2}, release {:.2}); \
         before the window: catch-up {:.2} s, proof {:.2} s; compared inside it: {} ({} keys)",
        report["downtime_seconds"].as_f64().unwrap_or(f64::NAN),
        part("fence"),
        part("drain"),
        part("validate"),
        part("release"),
        part("catch_up"),
        part("proof"),
        t["checked"].as_str().unwrap_or("?"),
        t["keys"]
    );
}

/// The simulator's acceptance from a plain writer: 1,000-row INSERTs over TDS for `secs`.
async fn plain_writer_rate(port: u16, secs: u64) -> f64 {
    tsql(port, Some("bench"), "CREATE TABLE dbo.bulk (id bigint NOT NULL PRIMARY KEY, a int NOT NULL, amount decimal(18,2) NOT NULL, \
        name nvarchar(100) NOT NULL, ts datetime2(6) NOT NULL, g uniqueidentifier NOT NULL)").await;
    let mut c = mssql_sim::workload::connect(
        format!("127.0.0.1:{port}").parse().unwrap(),
        common::PASSWORD,
        Some("bench"),
    )
    .await
    .expect("login");
    let t = Instant::now();
    let mut id = 0i64;
    while t.elapsed() < Duration::from_secs(secs) {
        let values: Vec<String> = (0..1000)
            .map(|_| {
                id += 1;
                format!(
                    "({id}, {}, {}.25, N'row {id}', '2024-05-01T10:00:00.123456', NEWID())",
                    id % 1000,
                    id % 10000
                )
            })
            .collect();
        testkit::exec(
            &mut c,
            &format!("INSERT INTO dbo.bulk VALUES {}", values.join(", ")),
        )
        .await;
    }
    id as f64 / t.elapsed().as_secs_f64()
}

async fn wait_applied(setup: &Setup) -> Duration {
    let t = Instant::now();
    let tpg = pg(&setup.target_url).await;
    let slot = replicator(&setup.config, &["status", "--json"])["fallback"]["slot"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    loop {
        let lag: i64 = tpg
            .query_one(
                "SELECT COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        // Only the flush the reader itself writes remains.
        if lag < 4096 {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut a = setup("fallbackbench", args.rows).await;
    let plain = plain_writer_rate(a.port, 10).await;
    let tpg = pg(&a.target_url).await;
    let source = pg(&a.source_url).await;
    let next_id = Arc::new(AtomicU64::new(args.rows as u64 + 1));
    println!(
        "plain bulk writer into the simulator (1,000-row INSERTs over TDS): {plain:.0} rows/s"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>10}",
        "offered/s", "postgres/s", "applied/s", "lag p50", "lag p99"
    );
    for &rate in &args.rates {
        let before = rows_applied(&a.config);
        let load = load::start(
            a.target_url.clone(),
            TXN,
            rate,
            args.connections,
            args.rows,
            next_id.clone(),
        );
        let t0 = Instant::now();
        let mut lags = Vec::new();
        let mut marker = 0i64;
        while t0.elapsed() < Duration::from_secs(args.seconds) {
            marker += 1;
            let id = MARKER_BASE + rate as i64 * 1_000_000 + marker;
            tpg.execute(
                "INSERT INTO public.ev VALUES ($1, 0, 0, 'marker', '2024-01-01 00:00:00', md5(($1::bigint)::text)::uuid)",
                &[&id],
            )
            .await
            .unwrap();
            let committed = Instant::now();
            loop {
                let seen = source
                    .query_opt("SELECT 1 FROM dbo.ev WHERE id = $1", &[&id])
                    .await
                    .unwrap()
                    .is_some();
                if seen {
                    lags.push(committed.elapsed().as_secs_f64());
                    break;
                }
                if committed.elapsed() > Duration::from_secs(60) {
                    lags.push(f64::INFINITY);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let next = Duration::from_millis(100 * marker as u64);
            if let Some(wait) = next.checked_sub(t0.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let made = load.finish().await;
        wait_applied(&a).await;
        let applied = rows_applied(&a.config) - before;
        println!(
            "{:>10} {:>12.0} {:>12.0} {:>9.3}s {:>9.3}s",
            rate,
            made as f64 / secs,
            applied as f64 / secs,
            percentile(&mut lags.clone(), 0.5),
            percentile(&mut lags, 0.99)
        );
    }
    // Rollback with changes pending: the fallback stopped while PostgreSQL takes them.
    let _ = Command::new("kill")
        .args(["-TERM", &a.fallback.id().to_string()])
        .status();
    let _ = a.fallback.wait();
    let load = load::start(
        a.target_url.clone(),
        TXN,
        20_000,
        args.connections,
        args.rows,
        next_id.clone(),
    );
    while load.changes.load(Ordering::Relaxed) < args.pending {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pending = load.finish().await;
    rollback(
        &a.config,
        &format!("rollback with {pending} changes pending"),
    );
    let _ = a.sim.kill();
    // Rollback with nothing pending, on a second migration of the same size.
    let mut b = setup("fallbackbench_empty", args.rows).await;
    wait_applied(&b).await;
    let _ = Command::new("kill")
        .args(["-TERM", &b.fallback.id().to_string()])
        .status();
    let _ = b.fallback.wait();
    rollback(&b.config, "rollback with nothing pending");
    let _ = b.sim.kill();
}
