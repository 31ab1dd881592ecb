//! kill -9 of the real binary at any instant of the snapshot: a restart ends with every row
//! present exactly once and equal, value by value.

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    replicator_command()
        .args(["--config", &config.display().to_string(), "run"])
        .env("TEST_MSSQL_PASSWORD", SA_PASSWORD)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("replicator starts")
}

async fn copied(pg: &tokio_postgres::Client) -> (i64, i64, i64) {
    let r = pg
        .query_opt(
            "SELECT COALESCE(sum(rows_copied), 0)::bigint, count(*) FILTER (WHERE done), count(*) FROM replicator.snapshot_parts",
            &[],
        )
        .await
        .ok()
        .flatten();
    r.map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap_or((0, 0, 0))
}

pub async fn fill(c: &mut Tds, table: &str, rows: usize, row: impl Fn(usize) -> String) {
    for start in (0..rows).step_by(500) {
        let values: Vec<String> = (start..(start + 500).min(rows)).map(&row).collect();
        exec(
            c,
            &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_snapshot_then_restart_loses_and_duplicates_nothing() {
    let env = Env::new("kill").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.k_int (id bigint NOT NULL PRIMARY KEY, name nvarchar(100) NOT NULL, g uniqueidentifier NOT NULL, \
           amount decimal(18,2) NOT NULL, ts datetime2(6) NOT NULL, b varbinary(50) NULL, n int NULL);
         CREATE TABLE dbo.k_str (k nvarchar(40) NOT NULL PRIMARY KEY, v int NOT NULL);
         CREATE TABLE dbo.k_guid (g uniqueidentifier NOT NULL PRIMARY KEY, v int NOT NULL);
         ALTER TABLE dbo.k_int ENABLE CHANGE_TRACKING; ALTER TABLE dbo.k_str ENABLE CHANGE_TRACKING;
         ALTER TABLE dbo.k_guid ENABLE CHANGE_TRACKING;",
    )
    .await;
    fill(&mut c, "dbo.k_int", 12000, |i| {
        format!(
            "({i}, N'név {i} ☃', '{:08x}-0000-4000-8000-{:012x}', {}.{:02}, '2024-02-29 12:34:56.{:06}', {}, {})",
            i * 7,
            i,
            i * 3,
            i % 100,
            i % 1_000_000,
            if i % 5 == 0 { "NULL".to_string() } else { format!("0x{:04x}", i % 65536) },
            if i % 3 == 0 { "NULL".to_string() } else { (i as i64 - 5000).to_string() }
        )
    })
    .await;
    fill(&mut c, "dbo.k_str", 8000, |i| {
        let prefix = ["a", "B", "é", "Z", "ü", "m n", "x]y", "q'"][i % 8];
        format!("(N'{}-{i}', {i})", prefix.replace('\'', "''"))
    })
    .await;
    fill(&mut c, "dbo.k_guid", 8000, |i| {
        format!(
            "('{:08x}-{:04x}-{:04x}-{:04x}-{:012x}', {i})",
            (i as u32).wrapping_mul(2654435761),
            i % 7,
            i % 65536,
            (i * 13) % 65536,
            (i as u64).wrapping_mul(1_000_003) % 0xFFFF_FFFF_FFFF
        )
    })
    .await;
    let cfg = env.config_file("[replication]\nsnapshot_chunk_rows = 300\nsnapshot_workers = 3\n[[tables]]\nsource = \"dbo.k_*\"\n");
    let log = env.dir.join("replicator.log");
    let pg = env.pg().await;
    // Kill twice at different points of the snapshot, then let it finish.
    for threshold in [2_000i64, 9_000] {
        let mut child = spawn(&cfg, &log);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (rows, _, _) = copied(&pg).await;
            if rows >= threshold {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "replicator exited early: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "snapshot made no progress: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(fastrand::u64(5..40))).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (rows, done, parts) = copied(&pg).await;
        assert!(
            done < parts,
            "killed mid-snapshot ({rows} rows, {done}/{parts} parts done)"
        );
    }
    let mut child = spawn(&cfg, &log);
    eventually("every table streams", Duration::from_secs(180), || async {
        pg.query_one(
            "SELECT count(*) FILTER (WHERE phase = 'streaming') = 3 FROM replicator.table_progress",
            &[],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
    })
    .await;
    // A clean stop: SIGTERM, exit 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "exit status {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for (table, cols, src) in [
        (
            "public.k_int",
            vec!["id", "name", "g", "amount", "ts", "b", "n"],
            "SELECT id, name, g, amount, ts, b, n FROM dbo.k_int",
        ),
        ("public.k_str", vec!["k", "v"], "SELECT k, v FROM dbo.k_str"),
        (
            "public.k_guid",
            vec!["g", "v"],
            "SELECT g, v FROM dbo.k_guid",
        ),
    ] {
        let mut want = source_rows(&mut c, src).await;
        let mut got = target_rows(&pg, table, &cols, "1").await;
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert!(got == want, "{table}: rows differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_applying_a_workload_then_restart_converges() {
    let env = Env::new("killapply").await;
    mssql_sim::workload::seed_database(env.sim.addr, SA_PASSWORD, "shop", 300)
        .await
        .unwrap();
    let mut c = env.tds().await;
    for t in mssql_sim::workload::seed::TABLES {
        let name = replicator::model::TableName::parse(t).unwrap();
        exec(
            &mut c,
            &format!("ALTER TABLE {} ENABLE CHANGE_TRACKING", name.tsql()),
        )
        .await;
    }
    let cfg = env
        .config_file("[replication]\npoll_interval = \"20ms\"\n[[tables]]\nsource = \"dbo.*\"\n");
    let log = env.dir.join("replicator.log");
    let pg = env.pg().await;
    let mut child = spawn(&cfg, &log);
    eventually("every table streams", Duration::from_secs(120), || async {
        pg.query_one(
            "SELECT count(*) FILTER (WHERE phase = 'streaming') = 5 FROM replicator.table_progress",
            &[],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
    })
    .await;
    let load = tokio::spawn(mssql_sim::workload::load::run(
        mssql_sim::workload::load::LoadConfig {
            server: env.sim.addr,
            sa_password: SA_PASSWORD.into(),
            database: "shop".into(),
            rate: 400,
            duration: Duration::from_secs(6),
            connections: 2,
            seed: 7,
        },
    ));
    // Kill the daemon three times at random instants while changes flow and windows apply.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(400..1500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
        child = spawn(&cfg, &log);
    }
    let report = load.await.unwrap().expect("workload runs");
    // The workload ran (its volume depends on the machine's speed; the point is the kills).
    assert!(report.values().sum::<u64>() > 50, "{report:?}");
    for (src, target, cols) in [
        ("SELECT id, customer_id, status, total, note FROM dbo.orders", "public.orders", vec!["id", "customer_id", "status", "total", "note"]),
        ("SELECT order_id, line_no, sku, qty, CAST(unit_price AS decimal(10,4)) FROM dbo.order_lines", "public.order_lines", vec!["order_id", "line_no", "sku", "qty", "unit_price"]),
        ("SELECT id, name, email, vip, CAST(balance AS decimal(19,4)), rowguid FROM dbo.customers", "public.customers", vec!["id", "name", "email", "vip", "balance", "rowguid"]),
    ] {
        wait_equal(&mut c, &pg, src, target, &cols, Duration::from_secs(60)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
