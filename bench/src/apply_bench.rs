//! `apply-bench`: continuous replication under load. For each offered rate, a workload of
//! 70/20/10 update/insert/delete changes (10 per source transaction) runs against the
//! simulator's Change Tracking while the release `replicator` streams it into PostgreSQL; marker
//! rows measure end-to-end lag (source commit to visible on the target). Then a backlog is
//! drained, and PostgreSQL's own best set-based upsert rate (COPY to staging + INSERT ... ON
//! CONFLICT) of the same mix is measured on the same machine in the same run.
//!
//! The workload writes through the simulator's backing database (its Change Tracking triggers
//! fire as for T-SQL DML), because the TDS front tops out near 4-5k changes/s on this machine.

mod common;
mod load;

use clap::Parser;
use common::{pg, tsql};
use futures_util::SinkExt;
use load::percentile;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmarks the replicator's apply rate and lag")]
struct Args {
    /// Offered change rates (changes/s), comma separated.
    #[arg(long, default_value = "1000,5000,20000", value_delimiter = ',')]
    rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Rows in the table before the run.
    #[arg(long, default_value_t = 200_000)]
    rows: i64,
    /// Changes in the drained backlog.
    #[arg(long, default_value_t = 200_000)]
    backlog: u64,
    /// Load connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

const MARKER_BASE: i64 = 1_000_000_000_000;

/// One source transaction of 10 changes: 7 updates, 2 inserts, 1 delete (of a row this
/// connection inserted earlier).
const TXN: &str = "WITH u AS (UPDATE dbo.ev SET a = a + 1, amount = amount + 0.01, name = 'updated ' || id WHERE id = ANY($1) RETURNING 1), \
  i AS (INSERT INTO dbo.ev (id, a, amount, name, ts, g) SELECT x, 1, 1.5, 'inserted ' || x, '2024-05-01 10:00:00.1234560', md5(x::text)::uuid FROM unnest($2::bigint[]) AS x RETURNING 1), \
  d AS (DELETE FROM dbo.ev WHERE id = ANY($3) RETURNING 1) SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM i) + (SELECT count(*) FROM d)";

async fn wait_caught_up(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
) -> Duration {
    let t = Instant::now();
    let v: i64 = source
        .query_one("SELECT _sim.ct_current_version()", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    loop {
        let pos: Option<String> = target
            .query_opt("SELECT stream_position FROM replicator.table_progress", &[])
            .await
            .ok()
            .flatten()
            .and_then(|r| r.get(0));
        if pos
            .and_then(|p| p.strip_prefix("ct:").and_then(|x| x.parse::<i64>().ok()))
            .is_some_and(|p| p >= v)
        {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let backing = testkit::fresh_database("applybench").await;
    let backing_db = backing.rsplit('/').next().unwrap().to_string();
    let target = testkit::fresh_database("applybench_target").await;
    let (mut sim, port) = common::start_sim_with_bench_db(&backing).await;
    tsql(port, Some("bench"), "CREATE TABLE dbo.ev (id bigint NOT NULL PRIMARY KEY, a int NOT NULL, amount decimal(18,2) NOT NULL, \
        name nvarchar(100) NOT NULL, ts datetime2 NOT NULL, g uniqueidentifier NOT NULL); ALTER TABLE dbo.ev ENABLE CHANGE_TRACKING").await;
    let source_url = testkit::pg().url_for(&mssql_sim::server::pg_name_for(&backing_db, "bench"));
    let source = pg(&source_url).await;
    source
        .batch_execute(&format!(
            "SET session_replication_role = replica; INSERT INTO dbo.ev SELECT i, i % 1000, (i % 10000) * 1.5, 'row ' || i, \
             '2024-01-01 00:00:00.0000000', md5(i::text)::uuid FROM generate_series(1, {}) AS i; ANALYZE dbo.ev; RESET session_replication_role",
            args.rows
        ))
        .await
        .unwrap();
    let (dir, config) = common::replicator_config(
        "apply-bench",
        port,
        &target,
        "[replication]\npoll_interval = \"100ms\"\n[[tables]]\nsource = \"dbo.ev\"\n",
    );
    let tpg = pg(&target).await;
    let mut repl = common::spawn_replicator(&config);
    common::wait_snapshot_done(&tpg, &mut repl, || {}).await;
    wait_caught_up(&source, &tpg).await;
    let next_id = Arc::new(AtomicU64::new(args.rows as u64 + 1));
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>10}",
        "offered/s", "source/s", "applied/s", "lag p50", "lag p99"
    );
    for &rate in &args.rates {
        let applied_before = applied(&dir).await;
        let load = load::start(
            source_url.clone(),
            TXN,
            rate,
            args.connections,
            args.rows,
            next_id.clone(),
        );
        // Markers: one every 50 ms, its commit time taken after COMMIT returns.
        let t0 = Instant::now();
        let mut lags = Vec::new();
        let mut marker = 0i64;
        while t0.elapsed() < Duration::from_secs(args.seconds) {
            marker += 1;
            let id = MARKER_BASE + (rate as i64) * 1_000_000 + marker;
            source
                .execute("INSERT INTO dbo.ev VALUES ($1, 0, 0, 'marker', '2024-01-01 00:00:00.0000000', md5(($1::bigint)::text)::uuid)", &[&id])
                .await
                .unwrap();
            let committed = Instant::now();
            loop {
                let seen = tpg
                    .query_opt("SELECT 1 FROM public.ev WHERE id = $1", &[&id])
                    .await
                    .unwrap()
                    .is_some();
                if seen {
                    lags.push(committed.elapsed().as_secs_f64());
                    break;
                }
                if committed.elapsed() > Duration::from_secs(30) {
                    let src: i64 = source
                        .query_one("SELECT count(*) FROM dbo.ev WHERE id = $1", &[&id])
                        .await
                        .unwrap()
                        .get(0);
                    let max: Option<i64> = tpg
                        .query_one("SELECT max(id) FROM public.ev", &[])
                        .await
                        .unwrap()
                        .get(0);
                    eprintln!("marker {id} not seen: at source {src}, target max id {max:?}");
                    lags.push(f64::INFINITY);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let next = Duration::from_millis(50 * marker as u64);
            if let Some(wait) = next.checked_sub(t0.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let made = load.finish().await;
        wait_caught_up(&source, &tpg).await;
        let applied_n = applied(&dir).await - applied_before;
        println!(
            "{:>10} {:>12.0} {:>12.0} {:>9.3}s {:>9.3}s",
            rate,
            made as f64 / secs,
            applied_n as f64 / secs,
            percentile(&mut lags.clone(), 0.5),
            percentile(&mut lags, 0.99)
        );
    }
    // Drain: a backlog made while the replicator is stopped, then applied.
    let applied_before = applied(&dir).await;
    let _ = Command::new("kill")
        .args(["-TERM", &repl.id().to_string()])
        .status();
    let _ = repl.wait();
    let load = load::start(
        source_url.clone(),
        TXN,
        1_000_000,
        args.connections,
        args.rows,
        next_id.clone(),
    );
    let t = Instant::now();
    while load.changes.load(Ordering::Relaxed) < args.backlog {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backlog = load.finish().await;
    let made_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut repl = common::spawn_replicator(&config);
    let drain = {
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_caught_up(&source, &tpg).await;
        t.elapsed()
    };
    let drained = applied(&dir).await.saturating_sub(applied_before);
    println!("backlog                   {backlog} changes made in {made_secs:.1} s ({:.0}/s at the source)", backlog as f64 / made_secs);
    println!(
        "drain                     {:.2} s from start to caught up: {:.0} source changes/s ({drained} net row changes on the target)",
        drain.as_secs_f64(),
        backlog as f64 / drain.as_secs_f64()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &repl.id().to_string()])
        .status();
    let _ = repl.wait();

    // The limit: PostgreSQL's own set-based upsert of the same mix, 10k changes per transaction.
    tpg.batch_execute(
        "CREATE TABLE public.ev_raw (LIKE public.ev INCLUDING ALL); INSERT INTO public.ev_raw SELECT * FROM public.ev; \
         CREATE TEMP TABLE st (LIKE public.ev, op \"char\"); ANALYZE public.ev_raw",
    )
    .await
    .unwrap();
    let total = 200_000u64;
    let batch = 10_000u64;
    let mut rng = fastrand::Rng::with_seed(9);
    let mut next = 5_000_000_000i64;
    let t = Instant::now();
    for _ in 0..total / batch {
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        for j in 0..batch {
            let (id, op) = match j % 10 {
                0..=6 => (rng.i64(1..=args.rows), 'U'),
                7 | 8 => {
                    next += 1;
                    (next, 'U')
                }
                _ => (rng.i64(1..=args.rows), 'D'),
            };
            if !seen.insert(id) {
                continue;
            }
            text.push_str(&format!(
                "{id}\t{}\t{}.25\trow {id}\t2024-05-01 10:00:00.123456\t{:032x}\t{op}\n",
                id % 1000,
                id % 10000,
                id as u128 * 7919
            ));
        }
        let tx_sql = "BEGIN; TRUNCATE st;";
        tpg.batch_execute(tx_sql).await.unwrap();
        let sink = tpg.copy_in("COPY st FROM STDIN").await.unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(text)).await.unwrap();
        sink.as_mut().finish().await.unwrap();
        tpg.batch_execute(
            "DELETE FROM public.ev_raw t USING st WHERE st.op = 'D' AND t.id = st.id; \
             INSERT INTO public.ev_raw (id, a, amount, name, ts, g) SELECT id, a, amount, name, ts, g FROM st WHERE op <> 'D' \
             ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, amount = EXCLUDED.amount, name = EXCLUDED.name, ts = EXCLUDED.ts, g = EXCLUDED.g; COMMIT",
        )
        .await
        .unwrap();
    }
    let raw = total as f64 / t.elapsed().as_secs_f64();
    println!("postgres raw upsert       {raw:.0} changes/s (COPY to staging + DELETE USING + INSERT ON CONFLICT, {batch} per transaction)");
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Changes the replicator applied so far (rows deleted + upserted), from its published status.
async fn applied(dir: &std::path::Path) -> u64 {
    // The status file is refreshed every second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = std::fs::read_to_string(dir.join("state/status.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["tables"][0]["changes_applied"].as_u64().unwrap_or(0)
}
