//! `cutover-bench`: the downtime of `replicator cutover --fence-source` and its parts, for the
//! reference table of `--rows` rows, with `--pending` source changes not yet applied when the
//! window opens. The equality proof is made first, while the daemon streams (`replicator
//! validate --full`), as a user's cutover would make or reuse it; `--full-check-in-window`
//! measures the previous behaviour (every row compared inside the window) instead.
//!
//! Release binaries `mssql-sim` and `replicator` next to this one run as child processes.

mod common;

use clap::Parser;
use common::{pg, sibling, tsql, PASSWORD};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Measures the cutover's downtime and its parts")]
struct Args {
    /// Rows in the reference table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Source changes (updates of distinct rows) made while the daemon is stopped, so they are
    /// pending when the window opens.
    #[arg(long, default_value_t = 0)]
    pending: i64,
    /// Compare every row inside the window (the behaviour before proofs).
    #[arg(long)]
    full_check_in_window: bool,
}

fn replicator(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(sibling("replicator"))
        .args(["--config", &config.display().to_string()])
        .args(args)
        .env("BENCH_MSSQL_PASSWORD", PASSWORD)
        .env("REPLICATOR_LOG", "warn,tiberius=error")
        .output()
        .expect("run replicator")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let backing = testkit::fresh_database("cutbench").await;
    let backing_db = backing.rsplit('/').next().unwrap().to_string();
    let target = testkit::fresh_database("cutbench_target").await;
    let (mut sim, port) = common::start_sim_with_bench_db(&backing).await;
    common::load_ref(port, &backing_db, args.rows).await;

    let (dir, config) = common::replicator_config(
        "cutover-bench",
        port,
        &target,
        "[replication]\npoll_interval = \"100ms\"\n[validation]\ninterval = \"off\"\nmax_share = 1.0\n[[tables]]\nsource = \"dbo.ref\"\n",
    );
    let tpg = pg(&target).await;
    let t = Instant::now();
    let mut repl = common::spawn_replicator(&config);
    common::wait_snapshot_done(&tpg, &mut repl, || {}).await;
    eprintln!("snapshot: {:.1} s", t.elapsed().as_secs_f64());
    // Streaming in the daemon's word too (caught up after the snapshot).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = replicator(&config, &["status", "--json"]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if s["tables"][0]["state"] == "streaming" {
            break;
        }
        assert!(Instant::now() < deadline, "never streaming: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The proof, while the daemon streams (what cutover would run itself without one).
    let mut prove_secs = 0.0;
    if !args.full_check_in_window {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let t = Instant::now();
            let out = replicator(&config, &["validate", "--full", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if v[0]["proven"] == true {
                prove_secs = t.elapsed().as_secs_f64();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no proof: {v} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &repl.id().to_string()])
        .status();
    let _ = repl.wait();
    // Changes pending at the fence: distinct rows updated at the source while nothing applies.
    if args.pending > 0 {
        let step = (args.rows / args.pending).max(1);
        tsql(
            port,
            Some("bench"),
            &format!(
                "UPDATE dbo.ref SET a = a + 1, updated = SYSDATETIME() WHERE id % {step} = 0 AND id <= {}",
                step * args.pending
            ),
        )
        .await;
    }
    let mut cut = vec![
        "cutover",
        "--yes",
        "--json",
        "--fence-source",
        "--validated-within",
        "1h",
    ];
    if args.full_check_in_window {
        cut.push("--full-check-in-window");
    }
    let out = replicator(&config, &cut);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(r["ok"], true, "{r}");
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let t = &r["tables"][0];
    let p = &r["parts"];
    let part = |k: &str| p[k].as_f64().unwrap_or(f64::NAN);
    println!("rows                      {}", args.rows);
    println!("pending at the fence      {}", args.pending);
    println!(
        "check inside the window   {} ({} keys)",
        t["check"].as_str().unwrap_or("?"),
        t["keys_checked"]
    );
    println!(
        "downtime                  {:.2} s",
        r["downtime_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  fence {:.2}, drain {:.2}, delta check {:.2}, counts {:.2}, full check {:.2}, identities {:.2}, foreign keys {:.2}, release {:.2}",
        part("fence"),
        part("drain"),
        part("delta_check"),
        part("counts"),
        part("full_check"),
        part("identities"),
        part("foreign_keys"),
        part("release")
    );
    println!(
        "command                   {:.2} s",
        r["command_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    if !args.full_check_in_window {
        println!("proof before the window   {prove_secs:.2} s (validate --full while streaming)");
    }
}
