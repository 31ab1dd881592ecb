//! Continuous replication: CT and CDC windows applied in source transaction order, retention
//! loss and TRUNCATE re-snapshotted, outages survived.

use crate::common::*;
use replicator::state::TableState;
use std::time::Duration;

const ACCOUNTS: &str = "CREATE TABLE dbo.acct (id int NOT NULL PRIMARY KEY, owner nvarchar(50) NULL, balance decimal(18,2) NOT NULL, note nvarchar(max) NULL, g uniqueidentifier NULL);
CREATE TABLE dbo.ledger (id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount decimal(18,2) NOT NULL);
ALTER TABLE dbo.acct ENABLE CHANGE_TRACKING; ALTER TABLE dbo.ledger ENABLE CHANGE_TRACKING;
INSERT INTO dbo.acct (id, owner, balance) VALUES (1, N'a', 1000), (2, N'b', 1000), (3, N'c', 1000);";

const ACCT_SQL: &str = "SELECT id, owner, balance, note, g FROM dbo.acct";
const ACCT_COLS: &[&str] = &["id", "owner", "balance", "note", "g"];
const LEDGER_SQL: &str = "SELECT id, from_id, to_id, amount FROM dbo.ledger";
const LEDGER_COLS: &[&str] = &["id", "from_id", "to_id", "amount"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ct_changes_arrive_whole_transactions_at_a_time() {
    let env = Env::new("ct_stream").await;
    let mut c = env.tds().await;
    exec(&mut c, ACCOUNTS).await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n"),
    );
    d.wait_state(
        &["dbo.acct", "dbo.ledger"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    // A reader of the target must never see half of a transfer.
    let reader_url = env.target_url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_r = stop.clone();
    let reader = tokio::spawn(async move {
        let mut r = testkit::connect(&reader_url).await;
        let mut checks = 0u64;
        while !stop_r.load(std::sync::atomic::Ordering::SeqCst) {
            let tx = r
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await
                .unwrap();
            let sum: String = tx
                .query_one("SELECT sum(balance)::text FROM public.acct", &[])
                .await
                .unwrap()
                .get(0);
            let moved: String = tx
                .query_one(
                    "SELECT (1000 - balance)::text FROM public.acct WHERE id = 1",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            let ledger: String = tx
                .query_one(
                    "SELECT COALESCE(sum(amount), 0)::text FROM public.ledger WHERE from_id = 1",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            tx.commit().await.unwrap();
            assert_eq!(sum, "3000.00", "money appeared or vanished");
            assert_eq!(
                moved.parse::<f64>().unwrap(),
                ledger.parse::<f64>().unwrap(),
                "a transfer seen half-applied"
            );
            checks += 1;
        }
        checks
    });
    for i in 0..60 {
        exec(&mut c, &format!(
            "BEGIN TRAN; UPDATE dbo.acct SET balance = balance - 1 WHERE id = 1; UPDATE dbo.acct SET balance = balance + 1 WHERE id = {}; \
             INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES (1, {}, 1); COMMIT",
            2 + i % 2, 2 + i % 2
        )).await;
    }
    wait_equal(
        &mut c,
        &pg,
        LEDGER_SQL,
        "public.ledger",
        LEDGER_COLS,
        Duration::from_secs(30),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let checks = reader.await.unwrap();
    assert!(checks > 0);
    // Every kind of change: NULLs, boundary values, a PK update, delete then re-insert.
    exec(&mut c, "INSERT INTO dbo.acct (id, owner, balance, note, g) VALUES (10, NULL, -9999999999999999.99, N'x' + NCHAR(0) + N'y', '6F9619FF-8B86-D011-B42D-00C04FD430C8'), (11, N'☃', 0, N'', NULL)").await;
    exec(&mut c, "UPDATE dbo.acct SET id = 12 WHERE id = 11").await;
    exec(&mut c, "DELETE FROM dbo.acct WHERE id = 3; INSERT INTO dbo.acct (id, owner, balance) VALUES (3, N'c again', 5)").await;
    exec(
        &mut c,
        "UPDATE dbo.acct SET owner = NULL, note = NULL WHERE id = 10",
    )
    .await;
    exec(&mut c, "DELETE FROM dbo.acct WHERE id = 2; INSERT INTO dbo.acct (id, owner, balance) VALUES (2, N'b', 1000)").await;
    wait_equal(
        &mut c,
        &pg,
        ACCT_SQL,
        "public.acct",
        ACCT_COLS,
        Duration::from_secs(30),
    )
    .await;
    let rec = d.table("dbo.ledger").unwrap();
    assert_eq!(rec.changes_applied, 60);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_change_history_and_truncate_resnapshot_the_table_only() {
    let env = Env::new("retention").await;
    let mut c = env.tds().await;
    exec(&mut c, ACCOUNTS).await;
    let cfg =
        || env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n");
    let d = Daemon::start(cfg());
    d.wait_state(
        &["dbo.acct", "dbo.ledger"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    // While the daemon is away, changes are made and then cleaned up past its position.
    exec(&mut c, "UPDATE dbo.acct SET balance = 1 WHERE id = 1; INSERT INTO dbo.acct (id, owner, balance) VALUES (4, N'd', 4)").await;
    exec(
        &mut c,
        "INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES (1, 2, 3)",
    )
    .await;
    exec(&mut c, "DECLARE @v bigint = CHANGE_TRACKING_CURRENT_VERSION(); EXEC sys.sp_mssqlsim_ct_cleanup @up_to_version = @v").await;
    let d = Daemon::start(cfg());
    let pg = env.pg().await;
    wait_equal(
        &mut c,
        &pg,
        ACCT_SQL,
        "public.acct",
        ACCT_COLS,
        Duration::from_secs(60),
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        LEDGER_SQL,
        "public.ledger",
        LEDGER_COLS,
        Duration::from_secs(60),
    )
    .await;
    let history = d.shared.store.history().unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.event == "resnapshot" && e.table.as_deref() == Some("dbo.acct")),
        "{history:#?}"
    );
    // TRUNCATE is not tracked: it moves the min valid version, and the table is copied again.
    d.wait_state(
        &["dbo.acct"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    exec(&mut c, "TRUNCATE TABLE dbo.acct; INSERT INTO dbo.acct (id, owner, balance) VALUES (7, N'after truncate', 7)").await;
    wait_equal(
        &mut c,
        &pg,
        ACCT_SQL,
        "public.acct",
        ACCT_COLS,
        Duration::from_secs(60),
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES (7, 7, 7)",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        LEDGER_SQL,
        "public.ledger",
        LEDGER_COLS,
        Duration::from_secs(30),
    )
    .await;
    let resnapshots = d
        .shared
        .store
        .history()
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "resnapshot")
        .count();
    assert!(resnapshots >= 2);
    d.stop().await.unwrap();
    // With policies.retention_loss = "stop" the table stops loudly and the others stream on.
    let d = Daemon::start(env.config(
        "[policies]\nretention_loss = \"stop\"\n[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n",
    ));
    d.wait_state(
        &["dbo.acct", "dbo.ledger"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    exec(&mut c, "TRUNCATE TABLE dbo.acct").await;
    d.wait_state(&["dbo.acct"], TableState::Errored, Duration::from_secs(30))
        .await;
    let err = d.table("dbo.acct").unwrap().last_error.unwrap();
    assert!(err.message.contains("are gone"), "{err:?}");
    assert!(
        err.hint.as_deref().unwrap_or("").contains("resync"),
        "{err:?}"
    );
    let target_rows = try_target_rows(&pg, "public.acct", ACCT_COLS, "1")
        .await
        .unwrap();
    assert_eq!(target_rows.len(), 1, "the stopped table keeps its rows");
    exec(
        &mut c,
        "INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES (8, 8, 8)",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        LEDGER_SQL,
        "public.ledger",
        LEDGER_COLS,
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_changes_are_applied_in_lsn_order() {
    let env = Env::new("cdc_stream").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.items (id int NOT NULL PRIMARY KEY, name nvarchar(50) NULL, qty int NOT NULL, price money NULL)").await;
    exec(
        &mut c,
        "INSERT INTO dbo.items VALUES (1, N'one', 1, 1.5), (2, N'two', 2, NULL)",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'items', @role_name = NULL").await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.items\"\n"),
    );
    d.wait_state(
        &["dbo.items"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        d.table("dbo.items")
            .unwrap()
            .change_source
            .map(|c| c.label()),
        Some("cdc")
    );
    exec(
        &mut c,
        "INSERT INTO dbo.items VALUES (3, N'three', 3, 922337203685477.5807)",
    )
    .await;
    exec(&mut c, "UPDATE dbo.items SET qty = qty + 10 WHERE id = 1; UPDATE dbo.items SET qty = qty + 10 WHERE id = 1").await;
    exec(&mut c, "DELETE FROM dbo.items WHERE id = 2; INSERT INTO dbo.items VALUES (2, N'two again', 22, NULL)").await;
    exec(&mut c, "BEGIN TRAN; INSERT INTO dbo.items VALUES (4, N'tmp', 4, 4); DELETE FROM dbo.items WHERE id = 4; COMMIT").await;
    exec(&mut c, "UPDATE dbo.items SET id = 5 WHERE id = 3").await;
    let pg = env.pg().await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, name, qty, CAST(price AS decimal(19,4)) FROM dbo.items",
        "public.items",
        &["id", "name", "qty", "price"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_of_either_database_pause_and_lose_nothing() {
    let mut env = Env::new("outage").await;
    let mut c = env.tds().await;
    exec(&mut c, ACCOUNTS).await;
    let sim_proxy = Proxy::start(env.sim.addr).await;
    let pg_addr: std::net::SocketAddr = {
        let cfg: tokio_postgres::Config = env.target_url.parse().unwrap();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("{other:?}"),
        };
        format!(
            "{}:{}",
            if host == "localhost" {
                "127.0.0.1".into()
            } else {
                host
            },
            cfg.get_ports()[0]
        )
        .parse()
        .unwrap()
    };
    let pg_proxy = Proxy::start(pg_addr).await;
    let direct_target = env.target_url.clone();
    env.target_url = direct_target.replace(
        &format!(":{}/", pg_addr.port()),
        &format!(":{}/", pg_proxy.addr.port()),
    );
    assert_ne!(env.target_url, direct_target);
    let text = env
        .config_text("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n")
        .replace(
            &format!("port = {}", env.sim.addr.port()),
            &format!("port = {}", sim_proxy.addr.port()),
        );
    let cfg = replicator::config::parse(&text, &TestEnv::default()).unwrap();
    let d = Daemon::start(cfg);
    d.wait_state(
        &["dbo.acct", "dbo.ledger"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    env.target_url = direct_target;
    let pg = env.pg().await;
    for round in 0..3 {
        // Source down: changes pile up at the source.
        sim_proxy.set_down(true);
        for i in 0..10 {
            exec(&mut c, &format!("INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES ({round}, {i}, 1); UPDATE dbo.acct SET balance = balance + 1 WHERE id = 1")).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        sim_proxy.set_down(false);
        wait_equal(
            &mut c,
            &pg,
            LEDGER_SQL,
            "public.ledger",
            LEDGER_COLS,
            Duration::from_secs(60),
        )
        .await;
        // Target down (as a PostgreSQL restart looks to a client): connections cut mid-flight.
        pg_proxy.set_down(true);
        for i in 0..10 {
            exec(&mut c, &format!("INSERT INTO dbo.ledger (from_id, to_id, amount) VALUES ({round}, {i}, 2); UPDATE dbo.acct SET balance = balance - 1 WHERE id = 2")).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        pg_proxy.set_down(false);
        wait_equal(
            &mut c,
            &pg,
            LEDGER_SQL,
            "public.ledger",
            LEDGER_COLS,
            Duration::from_secs(60),
        )
        .await;
        wait_equal(
            &mut c,
            &pg,
            ACCT_SQL,
            "public.acct",
            ACCT_COLS,
            Duration::from_secs(60),
        )
        .await;
    }
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_while_streaming() {
    let env = Env::new("schema_change").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v int NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING; INSERT INTO dbo.t VALUES (1, 1), (2, 2), (3, 3)").await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.t\"\n"),
    );
    d.wait_state(&["dbo.t"], TableState::Streaming, Duration::from_secs(60))
        .await;
    let pg = env.pg().await;
    // A new nullable column, set on some rows; a new column with a default.
    exec(&mut c, "ALTER TABLE dbo.t ADD note nvarchar(20) NULL").await;
    exec(&mut c, "UPDATE dbo.t SET note = N'two' WHERE id = 2; INSERT INTO dbo.t (id, v, note) VALUES (4, 4, N'four')").await;
    exec(
        &mut c,
        "ALTER TABLE dbo.t ADD flag int NOT NULL CONSTRAINT df_flag DEFAULT 7",
    )
    .await;
    exec(&mut c, "UPDATE dbo.t SET v = 10 WHERE id = 1").await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, v, note, flag FROM dbo.t",
        "public.t",
        &["id", "v", "note", "flag"],
        Duration::from_secs(30),
    )
    .await;
    // A dropped column stays on the target with its values; new rows leave it NULL.
    exec(&mut c, "ALTER TABLE dbo.t DROP COLUMN note").await;
    exec(&mut c, "INSERT INTO dbo.t (id, v) VALUES (5, 5)").await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, v, flag FROM dbo.t",
        "public.t",
        &["id", "v", "flag"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        target_rows(&pg, "public.t", &["id", "note"], "id").await,
        vec![
            vec![Some("1".into()), None],
            vec![Some("2".into()), Some("two".into())],
            vec![Some("3".into()), None],
            vec![Some("4".into()), Some("four".into())],
            vec![Some("5".into()), None],
        ]
    );
    let events: Vec<String> = d
        .shared
        .store
        .history()
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "schema_change")
        .map(|e| e.detail)
        .collect();
    assert!(
        events.iter().any(|e| e.contains("note added"))
            && events.iter().any(|e| e.contains("note dropped")),
        "{events:?}"
    );
    // A type change stops the table, with a reason and a hint.
    exec(&mut c, "ALTER TABLE dbo.t ALTER COLUMN v bigint NULL").await;
    exec(&mut c, "UPDATE dbo.t SET v = 6 WHERE id = 5").await;
    d.wait_state(&["dbo.t"], TableState::Errored, Duration::from_secs(30))
        .await;
    let err = d.table("dbo.t").unwrap().last_error.unwrap();
    assert!(
        err.message
            .contains("column v changed type from int to bigint"),
        "{}",
        err.message
    );
    assert!(err
        .hint
        .unwrap_or_default()
        .contains("replicator resync --table dbo.t"));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_switches_to_a_newer_capture_instance() {
    let env = Env::new("cdc_switch").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.items (id int NOT NULL PRIMARY KEY, qty int NOT NULL)",
    )
    .await;
    exec(&mut c, "INSERT INTO dbo.items VALUES (1, 1), (2, 2)").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'items', @role_name = NULL").await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.items\"\n"),
    );
    d.wait_state(
        &["dbo.items"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    exec(&mut c, "UPDATE dbo.items SET qty = 11 WHERE id = 1").await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, qty FROM dbo.items",
        "public.items",
        &["id", "qty"],
        Duration::from_secs(30),
    )
    .await;
    // The new shape: a column added, a second capture instance that captures it.
    exec(&mut c, "ALTER TABLE dbo.items ADD label nvarchar(20) NULL").await;
    exec(
        &mut c,
        "UPDATE dbo.items SET label = N'before' WHERE id = 2",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'items', @role_name = NULL, @capture_instance = N'dbo_items_v2'").await;
    exec(&mut c, "INSERT INTO dbo.items VALUES (3, 3, N'three'); UPDATE dbo.items SET label = N'one', qty = 12 WHERE id = 1").await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, qty, label FROM dbo.items",
        "public.items",
        &["id", "qty", "label"],
        Duration::from_secs(30),
    )
    .await;
    let switched = d
        .shared
        .store
        .history()
        .unwrap()
        .into_iter()
        .any(|e| e.event == "capture_instance_switch");
    assert!(switched);
    // The store records the instance the position now belongs to (it follows the window's
    // commit, which the rows above show).
    let v2 = Some(replicator::model::ChangeSource::Cdc("dbo_items_v2".into()));
    eventually(
        "the store names the new capture instance",
        Duration::from_secs(10),
        || {
            let now = d.table("dbo.items").unwrap().change_source;
            let v2 = v2.clone();
            async move { now == v2 }
        },
    )
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_cdc_backlog_is_applied_in_windows_cut_at_transaction_boundaries() {
    let env = Env::new("cdc_split").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.ev (id int NOT NULL PRIMARY KEY, grp int NOT NULL, v nvarchar(20) NULL)",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'ev', @role_name = NULL").await;
    let config = env.config(
        "[replication]\npoll_interval = \"50ms\"\nbatch_rows = 100\n[[tables]]\nsource = \"dbo.ev\"\n",
    );
    let d = Daemon::start(config.clone());
    d.wait_state(&["dbo.ev"], TableState::Streaming, Duration::from_secs(60))
        .await;
    d.stop().await.unwrap();
    // 30 source transactions of 40 rows each while the daemon is down.
    for t in 0..30 {
        let values: Vec<String> = (0..40)
            .map(|i| format!("({}, {t}, N'r{i}')", t * 40 + i))
            .collect();
        exec(
            &mut c,
            &format!(
                "INSERT INTO dbo.ev (id, grp, v) VALUES {}",
                values.join(", ")
            ),
        )
        .await;
    }
    let last_commit = std::time::Instant::now();
    eventually(
        "the capture job has every change",
        Duration::from_secs(30),
        || async {
            let mut c = env.tds().await;
            source_rows(&mut c, "SELECT COUNT(*) FROM cdc.dbo_ev_CT").await
                == vec![vec![Some("1200".to_string())]]
        },
    )
    .await;
    // Where the first window ends: a transaction boundary after 100 rows, short of the max.
    let max = replicator::source::cdc::max_lsn(&mut c)
        .await
        .unwrap()
        .unwrap();
    let zero = replicator::model::Lsn([0; 10]);
    let end = replicator::source::cdc::window_end(&mut c, &[("dbo_ev", zero)], max, 100)
        .await
        .unwrap();
    assert!(end < max, "a 1200-row backlog is cut at 100 rows");
    let mut q =
        tiberius::Query::new("SELECT COUNT(*) FROM cdc.dbo_ev_CT WHERE __$start_lsn <= @P1");
    q.bind(end.0.to_vec());
    let n: i32 = q
        .query(&mut c)
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(n, 120, "the window ends after the whole third transaction");
    // A reader of the target never sees part of a source transaction.
    let reader_url = env.target_url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_r = stop.clone();
    let reader = tokio::spawn(async move {
        let r = testkit::connect(&reader_url).await;
        let mut seen = std::collections::BTreeSet::new();
        while !stop_r.load(std::sync::atomic::Ordering::SeqCst) {
            let row = r
                .query_one(
                    "SELECT count(*), (SELECT count(*) FROM (SELECT grp FROM public.ev GROUP BY grp HAVING count(*) <> 40) p) FROM public.ev",
                    &[],
                )
                .await
                .unwrap();
            let (total, partial): (i64, i64) = (row.get(0), row.get(1));
            assert_eq!(
                partial, 0,
                "a source transaction seen in part ({total} rows)"
            );
            seen.insert(total);
        }
        seen
    });
    let restart_gap = last_commit.elapsed().as_secs_f64();
    let d = Daemon::start(config);
    let pg = env.pg().await;
    // The table's lag, sampled while the backlog is applied: once caught up, the simulator's
    // idle LSN marker (every 5 s, as SQL Server's capture job does) makes an empty window that
    // rightly shows lag 0.
    let caught_up = std::cell::Cell::new(false);
    let sample = async {
        let mut most = 0f64;
        while !caught_up.get() {
            if let Some(r) = d.table("dbo.ev") {
                most = most.max(r.lag_seconds);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        most
    };
    let wait = async {
        wait_equal(
            &mut c,
            &pg,
            "SELECT id, grp, v FROM dbo.ev",
            "public.ev",
            &["id", "grp", "v"],
            Duration::from_secs(60),
        )
        .await;
        caught_up.set(true);
    };
    let ((), most_lag) = tokio::join!(wait, sample);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    // Every window ends after 3 whole transactions (120 rows); the reader sees only those states.
    assert!(
        seen.iter().all(|t| t % 120 == 0),
        "states seen by the reader: {seen:?}"
    );
    assert!(seen.contains(&1200), "the reader saw the end: {seen:?}");
    // Lag counts from the source commit: the last window's changes waited at least as long as
    // the daemon was down after them.
    assert!(
        most_lag >= restart_gap - 0.05,
        "lag {most_lag} s is measured from the source commit (down {restart_gap:.3} s after the last one)"
    );
    d.stop().await.unwrap();
}
