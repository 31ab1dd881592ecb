//! `replicator-bench`: the replicator's snapshot of the reference table from `mssql-sim` into
//! PostgreSQL, next to PostgreSQL's own binary COPY of the same rows into the same table shape
//! on the same machine in the same run (the limit), with the replicator's peak RSS.
//!
//! Release binaries `mssql-sim` and `replicator` next to this one run as child processes, so
//! their CPU and memory are their own.

mod common;

use clap::Parser;
use common::{cpu_secs, pg, proc_field, sibling, PASSWORD};
use futures_util::{SinkExt, TryStreamExt};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmarks the replicator's snapshot against PostgreSQL's binary COPY")]
struct Args {
    /// Rows in the reference table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Snapshot workers (replication.snapshot_workers; default: the replicator's own default).
    #[arg(long)]
    workers: Option<usize>,
    /// Rows per snapshot chunk (replication.snapshot_chunk_rows; default: sized by bytes).
    #[arg(long)]
    chunk: Option<usize>,
    /// Who decodes the snapshot's rows (replication.snapshot_decoder: direct or tiberius).
    #[arg(long, default_value = "direct")]
    decoder: String,
    /// Skip the full validation after the snapshot.
    #[arg(long)]
    skip_validation: bool,
    /// Also time pgloader (Debian's package, over FreeTDS) copying the same table.
    #[arg(long)]
    pgloader: bool,
    /// Who computes the full validation's checksums (validation.checksums).
    #[arg(long, default_value = "database")]
    checksums: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let backing = testkit::fresh_database("replbench").await;
    let backing_db = backing.rsplit('/').next().unwrap().to_string();
    let target = testkit::fresh_database("replbench_target").await;
    let (mut sim, port) = common::start_sim_with_bench_db(&backing).await;
    common::load_ref(port, &backing_db, args.rows).await;

    // The replicator.
    let (dir, config) = common::replicator_config(
        "replicator-bench",
        port,
        &target,
        &format!(
            "[replication]\n{w}{c}snapshot_decoder = \"{d}\"\n\
             [validation]\ninterval = \"off\"\nmax_share = 1.0\nchecksums = \"{k}\"\n[[tables]]\nsource = \"dbo.ref\"\n",
            w = args
                .workers
                .map(|w| format!("snapshot_workers = {w}\n"))
                .unwrap_or_default(),
            c = args
                .chunk
                .map(|c| format!("snapshot_chunk_rows = {c}\n"))
                .unwrap_or_default(),
            d = args.decoder,
            k = args.checksums,
        ),
    );
    let tpg = pg(&target).await;
    let t = Instant::now();
    let mut repl = common::spawn_replicator(&config);
    let rpid = repl.id();
    let (sim_cpu0, repl_cpu0) = (cpu_secs(sim.id()), 0.0);
    let machine0 = common::machine_cpu_secs();
    let mut peak_rss = 0u64;
    common::wait_snapshot_done(&tpg, &mut repl, || {
        peak_rss = peak_rss.max(proc_field(rpid, "VmHWM:").unwrap_or(0));
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    peak_rss = peak_rss.max(proc_field(rpid, "VmHWM:").unwrap_or(0));
    let (sim_cpu, repl_cpu) = (cpu_secs(sim.id()) - sim_cpu0, cpu_secs(rpid) - repl_cpu0);
    let machine1 = common::machine_cpu_secs();
    let (busy, total) = (machine1.0 - machine0.0, machine1.1 - machine0.1);
    // Full validation through the running daemon (`replicator validate --full`), once the
    // table streams.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (validate_secs, validated, side_secs) = loop {
        if args.skip_validation {
            break (f64::NAN, "skipped".to_string(), (f64::NAN, f64::NAN));
        }
        let t = Instant::now();
        let out = Command::new(sibling("replicator"))
            .args([
                "--config",
                &config.display().to_string(),
                "validate",
                "--full",
                "--json",
            ])
            .env("BENCH_MSSQL_PASSWORD", PASSWORD)
            .output()
            .expect("run replicator validate");
        let secs = t.elapsed().as_secs_f64();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let result = v[0]["result"].as_str().unwrap_or("").to_string();
        if result != "skipped" && !result.is_empty() {
            let side = |k: &str| v[0]["seconds"][k].as_f64().unwrap_or(f64::NAN);
            break (
                secs,
                format!(
                    "{result}, {} rows, checksums in database: {}, rows read into the replicator: {}",
                    v[0]["source_rows"], v[0]["in_database"], v[0]["rows_read"]
                ),
                (side("source"), side("target")),
            );
        }
        assert!(
            Instant::now() < deadline,
            "validate never ran: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let peak_rss_validate = proc_field(rpid, "VmHWM:").unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-TERM", &rpid.to_string()])
        .status();
    let _ = repl.wait();
    let copied: i64 = tpg
        .query_one("SELECT count(*) FROM public.ref", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, args.rows, "every row copied");

    // The limit: PostgreSQL's own binary COPY of the same rows into the same table shape.
    let stream = tpg
        .copy_out("COPY public.ref TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    tpg.batch_execute("CREATE TABLE public.ref_copy (LIKE public.ref INCLUDING ALL)")
        .await
        .unwrap();
    let t = Instant::now();
    let sink = tpg
        .copy_in("COPY public.ref_copy FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    // Sent in 1 MB pieces, as any bulk loader would.
    let mut buf = bytes::BytesMut::with_capacity(1 << 20);
    for c in chunks {
        buf.extend_from_slice(&c);
        if buf.len() >= 1 << 20 {
            sink.send(buf.split().freeze()).await.unwrap();
        }
    }
    sink.send(buf.freeze()).await.unwrap();
    sink.as_mut().finish().await.unwrap();
    let copy_secs = t.elapsed().as_secs_f64();
    // The validation limit: PostgreSQL's own count(*) plus a hash aggregate over the same rows.
    let t = Instant::now();
    tpg.query_one(
        "SELECT count(*), sum(hashtext(r::text)::bigint) FROM public.ref r",
        &[],
    )
    .await
    .unwrap();
    let hash_secs = t.elapsed().as_secs_f64();
    let pgloader_secs = if args.pgloader {
        Some(pgloader(port, &dir, args.rows).await)
    } else {
        None
    };
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let mb = bytes as f64 / 1e6;
    let rate = args.rows as f64 / secs;
    let limit = args.rows as f64 / copy_secs;
    println!("rows                      {}", args.rows);
    println!(
        "snapshot workers          {} (chunk {})",
        args.workers
            .map_or("default".to_string(), |w| w.to_string()),
        args.chunk
            .map_or("sized by bytes".to_string(), |c| format!("{c} rows"))
    );
    println!("decoder                   {}", args.decoder);
    println!(
        "replicator snapshot       {secs:.2} s  {rate:.0} rows/s  {:.1} MB/s (binary COPY bytes)",
        mb / secs
    );
    println!("postgres binary COPY      {copy_secs:.2} s  {limit:.0} rows/s  {:.1} MB/s  (same rows, same table with its PK)", mb / copy_secs);
    println!("ratio                     {:.2}", rate / limit);
    println!(
        "replicator peak RSS       {:.1} MiB",
        peak_rss as f64 / 1024.0
    );
    println!("cpu seconds               replicator {repl_cpu:.1}, mssql-sim {sim_cpu:.1}");
    println!(
        "machine during snapshot   {busy:.1} of {total:.1} CPU-s busy ({:.0} %); PostgreSQL and the rest {:.1}",
        100.0 * busy / total,
        busy - repl_cpu - sim_cpu
    );
    println!(
        "replicator cpu / M rows   {:.2} s",
        repl_cpu / (args.rows as f64 / 1e6)
    );
    if let Some(p) = pgloader_secs {
        let prate = args.rows as f64 / p;
        println!(
            "pgloader                  {p:.2} s  {prate:.0} rows/s  (replicator {:.1}x)",
            rate / prate
        );
    }
    println!("validate --full           {validate_secs:.2} s  ({validated})");
    println!(
        "  each side               source (mssql-sim) {:.2} s, target (PostgreSQL) {:.2} s (in database: at once; else one after the other)",
        side_secs.0, side_secs.1
    );
    println!("postgres count+hash agg   {hash_secs:.2} s  (count(*), sum(hashtext(row::text)) on the target alone)");
    println!(
        "validate / limit          {:.1}x (target's share / limit {:.1}x)",
        validate_secs / hash_secs,
        side_secs.1 / hash_secs
    );
    println!(
        "replicator peak RSS       {:.1} MiB after validation",
        peak_rss_validate as f64 / 1024.0
    );
}

/// pgloader copying the simulator's `bench` database (its one table) into a fresh database:
/// its wall time, checked by the row count. FreeTDS speaks TDS 7.4 in UTF-8 (pgloader issue
/// 1068 otherwise).
async fn pgloader(port: u16, dir: &std::path::Path, rows: i64) -> f64 {
    let target = testkit::fresh_database("replbench_pgloader").await;
    let conf = dir.join("freetds.conf");
    std::fs::write(
        &conf,
        "[global]\n\ttds version = 7.4\n\tclient charset = UTF-8\n",
    )
    .unwrap();
    let source = format!("mssql://sa:{PASSWORD}@127.0.0.1:{port}/bench");
    let t = Instant::now();
    let out = Command::new("pgloader")
        .args(["--no-ssl-cert-verification", &source, &target])
        .env("FREETDSCONF", &conf)
        .current_dir(dir)
        .output()
        .expect("pgloader must be installed (apt-get install pgloader)");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "pgloader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: i64 = pg(&target)
        .await
        .query_one("SELECT count(*) FROM dbo.ref", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(got, rows, "pgloader copied every row");
    secs
}
