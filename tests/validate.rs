//! Validation while replication runs: real differences found and named, none invented under
//! load, repaired on request; resync of a table whose type changed; periodic validation.

use crate::common::*;
use replicator::daemon::validation::{run, Request, TableResult};
use replicator::model::Verdict;
use replicator::state::TableState;
use replicator::validate::pushdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn req(table: &str, full: bool, repair: bool) -> Request {
    Request {
        table: Some(table.into()),
        full,
        repair,
        views: false,
    }
}

fn one(results: Vec<TableResult>) -> TableResult {
    assert_eq!(results.len(), 1, "{results:#?}");
    results.into_iter().next().unwrap()
}

/// Updates, inserts and deletes on dbo.hot ids 1..=1000 (and new ids above 100000) until stopped.
fn load(env: &Env, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let addr = env.sim.addr;
    let db = env.database.clone();
    tokio::spawn(async move {
        let mut c = mssql_sim::workload::connect(addr, SA_PASSWORD, Some(&db))
            .await
            .unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut n = 0u64;
        let mut next = 100_000;
        while !stop.load(Ordering::SeqCst) {
            let a = rng.i32(1..=1000);
            let b = rng.i32(1..=1000);
            next += 1;
            exec(&mut c, &format!(
                "BEGIN TRAN; UPDATE dbo.hot SET v = v + 1, s = N'u' + CAST(v AS nvarchar(20)) WHERE id IN ({a}, {b}); \
                 INSERT INTO dbo.hot (id, v, s) VALUES ({next}, 0, N'new'); DELETE FROM dbo.hot WHERE id = {}; COMMIT",
                next - 5
            ))
            .await;
            n += 1;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_under_load_finds_real_differences_only_and_repairs_them() {
    let env = Env::new("validate_live").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.hot (id int NOT NULL PRIMARY KEY, v int NOT NULL, s nvarchar(40) NULL); \
        CREATE TABLE dbo.cold (id int NOT NULL PRIMARY KEY, name nvarchar(40) NULL); \
        ALTER TABLE dbo.hot ENABLE CHANGE_TRACKING; ALTER TABLE dbo.cold ENABLE CHANGE_TRACKING;",
    )
    .await;
    let hot: Vec<String> = (1..=2000).map(|i| format!("({i}, {i}, N'h{i}')")).collect();
    for part in hot.chunks(500) {
        exec(
            &mut c,
            &format!("INSERT INTO dbo.hot (id, v, s) VALUES {}", part.join(", ")),
        )
        .await;
    }
    let cold: Vec<String> = (1..=300).map(|i| format!("({i}, N'c{i}')")).collect();
    exec(
        &mut c,
        &format!("INSERT INTO dbo.cold (id, name) VALUES {}", cold.join(", ")),
    )
    .await;
    exec(
        &mut c,
        "UPDATE dbo.cold SET name = N'a' + NCHAR(0) + N'b' WHERE id = 10",
    )
    .await;
    let d = Daemon::start(env.config(
        "[validation]\ninterval = \"off\"\nsample_rows = 200\n[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n",
    ));
    d.wait_state(
        &["dbo.hot", "dbo.cold"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = load(&env, stop.clone());
    // Under load: no false alarm, full or sample, while keys change under the validation.
    let mut changing = 0;
    for full in [true, false, true, false, true] {
        let r = one(run(&d.shared, &req("dbo.hot", full, false)).await.unwrap());
        assert_eq!(r.result, Verdict::Equal, "under load: {r:#?}");
        assert!(r.findings.is_empty(), "{r:#?}");
        assert!(r.source_rows >= 1900, "{r:#?}");
        // Full mode says how long each side took; a sample has no such pass.
        assert_eq!(r.seconds.is_some(), full, "{r:#?}");
        if let Some(s) = r.seconds {
            assert!(s.source > 0.0 && s.target > 0.0, "{r:#?}");
        }
        changing += r.changing;
    }
    assert!(
        changing > 0,
        "the load changed keys while they were validated"
    );
    // Damage the target: a changed value, a deleted row, an extra row, a NUL-policy value
    // (stored stripped as 'ab'), and a value on the busy table outside the keys being written.
    let pg = env.pg().await;
    pg.batch_execute(
        "SET replicator.writer = 'on'; UPDATE public.cold SET name = 'tampered' WHERE id = 7; DELETE FROM public.cold WHERE id = 8; \
         INSERT INTO public.cold (id, name) VALUES (9999, 'extra'); UPDATE public.cold SET name = 'a b' WHERE id = 10; \
         UPDATE public.hot SET v = -1 WHERE id = 1500;",
    )
    .await
    .unwrap();
    let r = one(run(&d.shared, &req("dbo.cold", true, false)).await.unwrap());
    assert_eq!(r.result, Verdict::Different, "{r:#?}");
    let mut found = r.findings.clone();
    found.sort();
    assert_eq!(
        found,
        vec![
            "dbo.cold (id=10): values differ",
            "dbo.cold (id=7): values differ",
            "dbo.cold (id=8): missing on the target",
            "dbo.cold (id=9999): on the target only",
        ],
        "{r:#?}"
    );
    let r = one(run(&d.shared, &req("dbo.hot", true, false)).await.unwrap());
    assert_eq!(
        r.findings,
        vec!["dbo.hot (id=1500): values differ"],
        "{r:#?}"
    );
    // The record shows in status.
    let rec = d.table("dbo.cold").unwrap();
    let v = rec.last_validation.unwrap();
    assert_eq!((v.result, v.mode.as_str()), (Verdict::Different, "full"));
    // Repair, still under load, then nothing differs.
    for t in ["dbo.cold", "dbo.hot"] {
        let r = one(run(&d.shared, &req(t, true, true)).await.unwrap());
        assert_eq!(r.result, Verdict::Repaired, "{r:#?}");
        let r = one(run(&d.shared, &req(t, true, false)).await.unwrap());
        assert_eq!(r.result, Verdict::Equal, "after repair: {r:#?}");
    }
    stop.store(true, Ordering::SeqCst);
    let txns = writer.await.unwrap();
    assert!(txns > 10, "the load ran ({txns} transactions)");
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, v, s FROM dbo.hot",
        "public.hot",
        &["id", "v", "s"],
        Duration::from_secs(30),
    )
    .await;
    // id 10 holds a NUL at the source and is stored stripped (policy strip).
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, name FROM dbo.cold WHERE id <> 10",
        "(SELECT * FROM public.cold WHERE id <> 10) AS t",
        &["id", "name"],
        Duration::from_secs(30),
    )
    .await;
    let ten: String = pg
        .query_one("SELECT name FROM public.cold WHERE id = 10", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ten, "ab");
    let history = d.shared.store.history().unwrap();
    assert!(
        history.iter().any(|e| e.event == "validation"),
        "{history:#?}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_copies_a_table_again_after_a_type_change_and_periodic_validation_runs() {
    let env = Env::new("resync").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.r (id int NOT NULL PRIMARY KEY, amount int NULL); ALTER TABLE dbo.r ENABLE CHANGE_TRACKING; \
        CREATE TABLE dbo.other (id int NOT NULL PRIMARY KEY); ALTER TABLE dbo.other ENABLE CHANGE_TRACKING; \
        INSERT INTO dbo.r VALUES (1, 10), (2, 20), (3, NULL); INSERT INTO dbo.other VALUES (1)").await;
    let extra = "[validation]\ninterval = \"1s\"\n[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n";
    let d = Daemon::start(env.config(extra));
    d.wait_state(
        &["dbo.r", "dbo.other"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.wait_until("a periodic validation", Duration::from_secs(30), |d| {
        d.table("dbo.r")
            .and_then(|r| r.last_validation)
            .is_some_and(|v| v.result == Verdict::Equal && v.mode == "sample")
    })
    .await;
    exec(&mut c, "ALTER TABLE dbo.r ALTER COLUMN amount bigint NULL; UPDATE dbo.r SET amount = 5000000000 WHERE id = 1").await;
    d.wait_state(&["dbo.r"], TableState::Errored, Duration::from_secs(30))
        .await;
    assert!(replicator::daemon::resync::request(&d.shared, "dbo.nope").is_err());
    replicator::daemon::resync::request(&d.shared, "dbo.r").unwrap();
    d.wait_state(&["dbo.r"], TableState::Streaming, Duration::from_secs(60))
        .await;
    let pg = env.pg().await;
    let ty: String = pg
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.r'::regclass AND attname = 'amount'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "bigint");
    exec(&mut c, "INSERT INTO dbo.r VALUES (4, 6000000000)").await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, amount FROM dbo.r",
        "public.r",
        &["id", "amount"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
    // Offline: the binary marks it, the next start copies it again.
    let cfg = env.config_file(extra);
    let resync = |table: &str| {
        replicator_command()
            .arg("--config")
            .arg(&cfg)
            .args(["resync", "--table", table])
            .output()
            .unwrap()
    };
    let out = resync("dbo.r");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = resync("dbo.missing");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dbo.missing"));
    let d = Daemon::start(env.config(extra));
    d.wait_state(&["dbo.r"], TableState::Streaming, Duration::from_secs(60))
        .await;
    let resyncs = d
        .shared
        .store
        .history()
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "snapshot_started" && e.table.as_deref() == Some("dbo.r"))
        .count();
    assert_eq!(resyncs, 3, "initial copy, online resync, offline resync");
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, amount FROM dbo.r",
        "public.r",
        &["id", "amount"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
}

/// Every type the databases render themselves, at its boundaries (no xml: compared in the daemon).
const RENDERED: &str = r#"
CREATE TABLE dbo.rendered (
 id int NOT NULL PRIMARY KEY,
 t tinyint NULL, s smallint NULL, b bigint NULL, bt bit NULL,
 m money NULL, sm smallmoney NULL,
 d38 decimal(38,0) NULL, d3838 decimal(38,38) NULL, n18 numeric(18,2) NULL,
 r real NULL, f float NULL,
 dt datetime NULL, sdt smalldatetime NULL, d2 datetime2 NULL, d2_3 datetime2(3) NULL, da date NULL,
 tm time NULL, dto datetimeoffset NULL,
 vc varchar(10) NULL, nvc nvarchar(20) NULL, nmax nvarchar(max) NULL, ch char(3) NULL,
 vb varbinary(8) NULL, bmax varbinary(max) NULL, g uniqueidentifier NULL
);
INSERT INTO dbo.rendered VALUES (1, 255, 32767, 9223372036854775807, 1, 922337203685477.5807, 214748.3647,
 99999999999999999999999999999999999999, 0.99999999999999999999999999999999999999, 9999999999999999.99,
 -1.5, 1.7976931348623157E308,
 '9999-12-31 23:59:59.997', '2079-06-06 23:59', '9999-12-31 23:59:59.9999999', '2000-01-01 00:00:00.123', '9999-12-31',
 '23:59:59.9999999', '2020-05-01 10:00:00.1234567 +05:30',
 'abcdefghij', N'☃ naïve 𝄞', N'a' + NCHAR(0) + N'b', 'ab', 0xDEADBEEF, 0x, '6F9619FF-8B86-D011-B42D-00C04FD430C8');
INSERT INTO dbo.rendered VALUES (2, 0, -32768, -9223372036854775808, 0, -922337203685477.5808, -214748.3648,
 -99999999999999999999999999999999999999, -0.00000000000000000000000000000000000001, -0.01,
 0, -2.2250738585072014E-308,
 '1753-01-01 00:00:00.003', '1900-01-01 00:00', '0001-01-01 00:00:00', NULL, '0001-01-01',
 '00:00:00', '2000-01-01 00:00:00 -08:00',
 '', N'', N'', NULL, 0x00, NULL, '00000000-0000-0000-0000-000000000000');
INSERT INTO dbo.rendered (id) VALUES (3);
ALTER TABLE dbo.rendered ENABLE CHANGE_TRACKING;
CREATE TABLE dbo.keyed (k nvarchar(20) NOT NULL, g uniqueidentifier NOT NULL, d datetime2 NOT NULL, v int NULL,
 CONSTRAINT pk_keyed PRIMARY KEY (k, g, d));
ALTER TABLE dbo.keyed ENABLE CHANGE_TRACKING;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_validation_is_computed_by_both_databases_and_reads_only_differing_buckets() {
    let env = Env::new("pushdown").await;
    let mut c = env.tds().await;
    exec(&mut c, RENDERED).await;
    let mut rows = Vec::new();
    for i in 0..3000 {
        rows.push(format!(
            "(N'k{}ü', NEWID(), DATEADD(microsecond, {i}, '2024-02-29 12:00:00.1234567'), {i})",
            i % 7
        ));
    }
    for chunk in rows.chunks(500) {
        exec(
            &mut c,
            &format!("INSERT INTO dbo.keyed VALUES {}", chunk.join(", ")),
        )
        .await;
    }
    let cfg = "[[tables]]\nsource = \"dbo.*\"\n";
    let d = Daemon::start(env.config(cfg));
    d.wait_state(
        &["dbo.rendered", "dbo.keyed"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    let cutover_with = |env: &Env, cfg: &str| {
        replicator::cutover::run(env.config(cfg), {
            let mut o = replicator::cutover::Options::new(false);
            o.timeout = Duration::from_secs(60);
            o
        })
    };
    let cutover = |env: &Env| cutover_with(env, cfg);
    // One changed value on the target: found by key, and only its bucket is read.
    let pg = env.pg().await;
    pg.batch_execute("SET replicator.writer = 'on'; UPDATE public.keyed SET v = -1 WHERE v = 1234")
        .await
        .unwrap();
    let report = cutover(&env).await.unwrap();
    assert!(!report.ok);
    let keyed = report
        .tables
        .iter()
        .find(|t| t.source == "dbo.keyed")
        .unwrap();
    assert!(keyed.checked_in_database, "{}", report.render());
    assert!(
        keyed.rows_read > 0 && keyed.rows_read < 100,
        "only the differing bucket is read: {}",
        keyed.rows_read
    );
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report.problems[1].contains("dbo.keyed (k='k2ü'"),
        "{:?}",
        report.problems
    );
    // With the checksums left to the replicator, the same key is found by reading every row.
    let by_replicator = format!("{cfg}[validation]\nchecksums = \"replicator\"\n");
    let report = cutover_with(&env, &by_replicator).await.unwrap();
    let keyed = report
        .tables
        .iter()
        .find(|t| t.source == "dbo.keyed")
        .unwrap();
    assert!(!report.ok && !keyed.checked_in_database);
    assert!(keyed.rows_read >= 6000, "{}", keyed.rows_read);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("dbo.keyed (k='k2ü'")),
        "{:?}",
        report.problems
    );
    // Repaired by hand, every type at its boundaries renders alike in both engines: no row is
    // read into the replicator.
    pg.batch_execute("SET replicator.writer = 'on'; UPDATE public.keyed SET v = 1234 WHERE v = -1")
        .await
        .unwrap();
    let report = cutover(&env).await.unwrap();
    assert!(report.ok, "{}", report.render());
    for t in &report.tables {
        assert!(t.checked_in_database, "{}", t.source);
        assert_eq!(t.rows_read, 0, "{} was compared row by row", t.source);
    }
    assert_eq!(
        report.tables.iter().map(|t| t.source_rows).sum::<i64>(),
        3003
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_database_checksums_add_up_piece_by_piece_on_both_sides() {
    let env = Env::new("paced").await;
    let mut c = env.tds().await;
    exec(&mut c, RENDERED).await;
    let rows: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                "(N'k{}ü', NEWID(), DATEADD(microsecond, {i}, '2024-02-29 12:00:00.1234567'), {i})",
                i % 7
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        exec(
            &mut c,
            &format!("INSERT INTO dbo.keyed VALUES {}", chunk.join(", ")),
        )
        .await;
    }
    let cfg = "[validation]\ninterval = \"off\"\nmax_share = 0.9\nchunk_rows = 250\n[[tables]]\nsource = \"dbo.keyed\"\n";
    let d = Daemon::start(env.config(cfg));
    d.wait_state(
        &["dbo.keyed"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    // Both sides really aggregate in pieces (key ranges on the composite string, uuid and
    // datetime2 key; page ranges on the target), and the pieces add up to the whole.
    let rt = d
        .shared
        .registry
        .runtimes()
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == "dbo.keyed")
        .unwrap()
        .1;
    let plan = &rt.plan;
    let q = pushdown::queries(plan, &Default::default()).expect("rendered in database");
    let mut src = env.tds().await;
    let ranges = replicator::source::split::key_ranges(&mut src, plan, 13)
        .await
        .unwrap();
    assert!(ranges.len() > 5, "{}", ranges.len());
    let whole = pushdown::source_sums(&mut src, plan, &q, None, 1.0)
        .await
        .unwrap();
    let pieces = pushdown::source_sums(&mut src, plan, &q, Some(250), 1.0)
        .await
        .unwrap();
    assert_eq!(whole.rows, 3000);
    assert_eq!(whole, pieces);
    let mut pg = env.pg().await;
    let tx = pg.transaction().await.unwrap();
    let page_ranges = pushdown::target_pieces(&tx, plan, Some(250)).await.unwrap();
    assert!(page_ranges.len() > 5, "{page_ranges:?}");
    let target_whole = pushdown::target_sums(&tx, plan, &q, None, 1.0)
        .await
        .unwrap();
    let target_pieces = pushdown::target_sums(&tx, plan, &q, Some(250), 1.0)
        .await
        .unwrap();
    assert_eq!(target_whole, target_pieces);
    assert_eq!(target_whole, whole, "both engines agree");
    tx.commit().await.unwrap();
    // Through the daemon, paced (max_share < 1): equal without reading a row, and a damaged
    // row is found by key.
    let r = one(run(&d.shared, &req("dbo.keyed", true, false))
        .await
        .unwrap());
    assert_eq!(r.result, Verdict::Equal, "{r:#?}");
    assert!(r.in_database && r.rows_read == 0, "{r:#?}");
    pg.batch_execute("SET replicator.writer = 'on'; UPDATE public.keyed SET v = -1 WHERE v = 1234")
        .await
        .unwrap();
    let r = one(run(&d.shared, &req("dbo.keyed", true, false))
        .await
        .unwrap());
    assert_eq!(r.result, Verdict::Different, "{r:#?}");
    assert!(r.rows_read > 0 && r.rows_read < 100, "{r:#?}");
    assert!(r.findings.iter().any(|f| f.contains("k='k2ü'")), "{r:#?}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_views_compares_translated_views_row_for_row_and_finds_a_difference() {
    let env = Env::new("viewcheck").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.item (id int NOT NULL PRIMARY KEY, name nvarchar(20) NOT NULL, price decimal(10,2) NULL, active bit NOT NULL); \
         CREATE TABLE dbo.unlisted (id int NOT NULL PRIMARY KEY); \
         ALTER TABLE dbo.item ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.item VALUES (1, N'bolt', 1.50, 1), (2, N'nut', 0.25, 1), (3, N'gear', NULL, 0), (4, N'bolt', 1.50, 1)",
    )
    .await;
    exec(&mut c, "CREATE VIEW dbo.active_items AS SELECT id, UPPER(name) AS label, price * 2 AS twice, active FROM dbo.item WHERE active = 1").await;
    exec(
        &mut c,
        "CREATE VIEW dbo.cheap AS SELECT label, twice FROM dbo.active_items WHERE twice < 3",
    )
    .await;
    exec(
        &mut c,
        "CREATE VIEW dbo.other AS SELECT id FROM dbo.unlisted",
    )
    .await;
    let cfg = env.config_file(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.item\"\n",
    );
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let views = |cfg: &std::path::Path| {
        let out = replicator(cfg, &["validate", "--views", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let by_name = |n: &str| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|r| r["table"] == n)
                .unwrap_or_else(|| panic!("{n} in {v:#}"))
                .clone()
        };
        (
            out.status.success(),
            by_name("dbo.active_items"),
            by_name("dbo.cheap"),
            by_name("dbo.other"),
        )
    };
    // Rows written while it runs are waited for, not reported.
    exec(&mut c, "INSERT INTO dbo.item VALUES (5, N'washer', 0.10, 1); UPDATE dbo.item SET active = 1 WHERE id = 3").await;
    let (ok, active, cheap, other) = views(&cfg);
    assert!(ok, "{active:#} {cheap:#}");
    assert_eq!(
        (
            &active["result"],
            &active["source_rows"],
            &active["target_rows"]
        ),
        (&"equal".into(), &5.into(), &5.into()),
        "{active:#}"
    );
    assert_eq!(
        (&cheap["result"], &cheap["source_rows"]),
        (&"equal".into(), &2.into()),
        "{cheap:#}"
    );
    assert_eq!(other["result"], "skipped");
    assert!(
        other["note"]
            .as_str()
            .unwrap()
            .starts_with("not translated"),
        "{other:#}"
    );
    // A row changed behind the replicator's back is a difference in both views over it.
    let pg = env.pg().await;
    pg.batch_execute("SET replicator.writer = 'on'; UPDATE public.item SET price = 9 WHERE id = 2")
        .await
        .unwrap();
    let (ok, active, cheap, _) = views(&cfg);
    assert!(!ok, "validate --views exits non-zero on a difference");
    assert_eq!(active["result"], "different", "{active:#}");
    assert_eq!(
        active["findings"][0],
        "view dbo.active_items: 1 rows only at the source, 1 only on the target"
    );
    assert_eq!(cheap["result"], "different", "{cheap:#}");
    assert_eq!(
        (&cheap["source_rows"], &cheap["target_rows"]),
        (&2.into(), &1.into())
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
