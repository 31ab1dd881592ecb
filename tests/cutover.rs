//! Cutover through the real binary: status while running, the report, refusal, differences,
//! and the source write fence.

use crate::common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_while_running_then_cutover_reports_and_stops_the_daemon() {
    let env = Env::new("cutover").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.a (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, v nvarchar(20) NULL); ALTER TABLE dbo.a ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "CREATE TABLE dbo.b (id int NOT NULL PRIMARY KEY, a_id int NOT NULL CONSTRAINT fk_b_a REFERENCES dbo.a (id)); ALTER TABLE dbo.b ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.a (v) VALUES (N'x'), (N'y'), (N'z'); INSERT INTO dbo.b VALUES (1, 1), (2, 3)").await;
    let cfg = env
        .config_file("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n");
    let mut daemon = spawn_daemon(&env, &cfg);
    let s = wait_all_streaming(&cfg, 2).await;
    assert_eq!(s["tables"][0]["source"], "dbo.a");
    assert_eq!(s["tables"][0]["rows_copied"], 3);
    assert_eq!(s["tables"][0]["snapshot_percent"], 100.0);
    exec(
        &mut c,
        "INSERT INTO dbo.a (v) VALUES (N'after'); INSERT INTO dbo.b VALUES (3, 4)",
    )
    .await;
    let report = cutover_succeeds(&cfg);
    assert_eq!(report["ok"], true);
    assert!(report["downtime_seconds"].as_f64().unwrap() > 0.0);
    // The foreign key was validated before the window (the daemon still streaming) or in it.
    assert_eq!(
        report["foreign_keys_validated_before"].as_i64().unwrap()
            + report["foreign_keys_validated"].as_i64().unwrap(),
        1,
        "{report}"
    );
    // Each table was proven equal while the daemon streamed, and only its delta checked after.
    for t in report["tables"].as_array().unwrap() {
        assert_eq!(t["check"], "delta", "{report}");
        assert!(t["proof"]["validated_at"].is_string(), "{report}");
    }
    let a = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "dbo.a")
        .unwrap()
        .clone();
    assert_eq!(
        (
            a["source_rows"].clone(),
            a["target_rows"].clone(),
            a["result"].clone()
        ),
        (4.into(), 4.into(), "equal".into())
    );
    assert_eq!(a["identity_synced_to"], 4);
    // The daemon was asked to stop and did, cleanly.
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "daemon still running after cutover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success());
    // The target continues identities after the source's and has no progress schema left.
    let pg = env.pg().await;
    let id: i32 = pg
        .query_one("INSERT INTO public.a (v) VALUES ('new') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, 5);
    let progress: Option<String> = pg
        .query_one("SELECT to_regnamespace('replicator')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(progress, None);
    let s = status_json(&cfg);
    assert!(
        s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "cut_over"),
        "{s}"
    );
    assert_eq!(s["cutover"]["ok"], true);
    let history = replicator(&cfg, &["history", "--json"]);
    let text = String::from_utf8_lossy(&history.stdout);
    for event in [
        "snapshot_started",
        "snapshot_finished",
        "cutover_started",
        "\"cutover\"",
    ] {
        assert!(text.contains(event), "{event} missing from history: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_is_refused_and_changes_nothing_when_a_table_is_not_streaming() {
    let env = Env::new("refuse").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.ok (id int NOT NULL PRIMARY KEY); ALTER TABLE dbo.ok ENABLE CHANGE_TRACKING; CREATE TABLE dbo.untracked (id int NOT NULL PRIMARY KEY)").await;
    let d = Daemon::start(env.config("[[tables]]\nsource = \"dbo.*\"\n"));
    d.wait_state(
        &["dbo.ok"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.wait_state(
        &["dbo.untracked"],
        replicator::state::TableState::Errored,
        Duration::from_secs(60),
    )
    .await;
    let err = d.table("dbo.untracked").unwrap().last_error.unwrap();
    assert!(err
        .hint
        .unwrap_or_default()
        .contains("ENABLE CHANGE_TRACKING"));
    d.stop().await.unwrap();
    let cfg = env.config_file("[[tables]]\nsource = \"dbo.*\"\n");
    let out = replicator(&cfg, &["cutover", "--yes"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("dbo.untracked is errored"),
        "{stderr}"
    );
    let pg = env.pg().await;
    let progress: Option<String> = pg
        .query_one("SELECT to_regnamespace('replicator')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        progress.as_deref(),
        Some("replicator"),
        "progress schema untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_finds_every_difference_names_its_key_and_cuts_nothing_over() {
    let env = Env::new("validate").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(20) NULL, n decimal(10,2) NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "CREATE TABLE dbo.s (k nvarchar(10) NOT NULL PRIMARY KEY, v nvarchar(20) NULL); ALTER TABLE dbo.s ENABLE CHANGE_TRACKING").await;
    let rows: Vec<String> = (1..=500)
        .map(|i| format!("({i}, N'v{i}', {i}.5)"))
        .collect();
    exec(
        &mut c,
        &format!("INSERT INTO dbo.t VALUES {}", rows.join(", ")),
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO dbo.s VALUES (N'a', N'x' + NCHAR(0) + N'y'), (N'b', N'z')",
    )
    .await;
    let d = Daemon::start(env.config("[[tables]]\nsource = \"dbo.*\"\n"));
    d.wait_state(
        &["dbo.t", "dbo.s"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    // Damage the target: a changed value, a deleted row, an extra row, a changed NUL-policy value.
    let pg = env.pg().await;
    pg.batch_execute(
        "SET replicator.writer = 'on'; UPDATE public.t SET n = 0 WHERE id = 17; DELETE FROM public.t WHERE id = 250; INSERT INTO public.t VALUES (9999, 'extra', 1); \
         UPDATE public.s SET v = 'x y' WHERE k = 'a'",
    )
    .await
    .unwrap();
    let cfg = env.config_file("[[tables]]\nsource = \"dbo.*\"\n");
    let out = replicator(&cfg, &["cutover", "--yes", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].to_string();
    for want in [
        "dbo.t (id=17): values differ",
        "dbo.t (id=250): missing on the target",
        "dbo.t (id=9999): on the target only",
        "dbo.s (k='a'): values differ",
    ] {
        assert!(problems.contains(want), "{want} not in {problems}");
    }
    assert!(!problems.contains("id=18"), "no false positive: {problems}");
    let progress: Option<String> = pg
        .query_one("SELECT to_regnamespace('replicator')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(progress.as_deref(), Some("replicator"), "nothing cut over");
    let s = status_json(&cfg);
    let t = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "dbo.t")
        .unwrap()
        .clone();
    assert_eq!(t["state"], "streaming");
    assert_eq!(t["last_validation"]["result"], "different");
    assert!(
        t["last_validation"]["findings"]
            .to_string()
            .contains("dbo.t (id=17): values differ"),
        "{t}"
    );
}

/// Inserts one row per statement into `dbo.a` (Change Tracking) and `dbo.[c x]` (CDC) until
/// stopped; counts what committed and the fence errors seen. Any other error fails the test.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    committed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    fenced: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(mut c: Tds) -> Writer {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let fenced = Arc::new(AtomicU64::new(0));
        let (s, ok, f) = (stop.clone(), committed.clone(), fenced.clone());
        let task = tokio::spawn(async move {
            let mut other = Vec::new();
            let mut i = 1000;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                for sql in [
                    format!("INSERT INTO dbo.a (v) VALUES (N'w{i}')"),
                    format!("INSERT INTO dbo.[c x] VALUES ({i}, {i})"),
                ] {
                    let r = match c.simple_query(sql).await {
                        Ok(stream) => stream.into_results().await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) if e.to_string().contains("are fenced") => {
                            f.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(e) => {
                            other.push(e.to_string());
                            0
                        }
                    };
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other
        });
        Writer {
            stop,
            committed,
            fenced,
            task,
        }
    }

    fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.committed.load(Ordering::SeqCst),
            self.fenced.load(Ordering::SeqCst),
        )
    }

    /// Waits until `f(committed, fenced)` holds.
    async fn wait(&self, what: &str, f: impl Fn(u64, u64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(self.counts().0, self.counts().1) {
            assert!(
                Instant::now() < deadline,
                "writer: {what}: {:?}",
                self.counts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let other = self.task.await.unwrap();
        assert!(
            other.is_empty(),
            "writer errors other than the fence: {other:?}"
        );
    }
}

async fn fence_triggers(c: &mut Tds) -> i64 {
    let rows = source_rows(
        c,
        "SELECT COUNT(*) FROM sys.triggers WHERE name LIKE N'replicator!_fence!_%' ESCAPE '!'",
    )
    .await;
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_source_refuses_writes_from_the_drain_on_and_a_failed_cutover_lifts_it() {
    let env = Env::new("fence").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.a (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, v nvarchar(20) NULL); ALTER TABLE dbo.a ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(
        &mut c,
        "CREATE TABLE dbo.[c x] (id int NOT NULL PRIMARY KEY, v int NOT NULL)",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'c x', @role_name = NULL").await;
    exec(
        &mut c,
        "INSERT INTO dbo.a (v) VALUES (N'x'), (N'y'); INSERT INTO dbo.[c x] VALUES (1, 1)",
    )
    .await;
    let cfg = env
        .config_file("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n");
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 2).await;
    // A damaged target row makes the first cutover fail: the fence must come off again. (Damaged
    // as only the replicator could, and checked row by row inside the window: a proof made
    // before it would repair it.)
    let pg = env.pg().await;
    pg.batch_execute(
        "SET replicator.writer = 'on'; UPDATE public.a SET v = 'damaged' WHERE id = 1",
    )
    .await
    .unwrap();
    let writer = Writer::start(env.tds().await);
    writer
        .wait("commits before the cutover", |ok, _| ok >= 20)
        .await;
    let out = replicator(
        &cfg,
        &[
            "cutover",
            "--yes",
            "--json",
            "--fence-source",
            "--full-check-in-window",
            "--timeout",
            "60s",
        ],
    );
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["problems"].to_string().contains("dbo.a (id=1)"));
    assert_eq!(report["fence"]["lowered"], true, "{report}");
    assert_eq!(fence_triggers(&mut c).await, 0);
    let after_failure = writer.counts().0;
    writer
        .wait("commits after the failed cutover", |ok, _| {
            ok >= after_failure + 20
        })
        .await;
    assert!(
        daemon.wait().unwrap().success(),
        "the daemon stopped cleanly"
    );
    let history =
        String::from_utf8_lossy(&replicator(&cfg, &["history", "--json"]).stdout).to_string();
    assert!(history.contains("source_fenced") && history.contains("source_unfenced"));

    // Repaired, the second cutover succeeds while the writer goes on writing.
    pg.batch_execute("SET replicator.writer = 'on'; UPDATE public.a SET v = 'x' WHERE id = 1")
        .await
        .unwrap();
    let out = replicator(
        &cfg,
        &[
            "cutover",
            "--yes",
            "--json",
            "--fence-source",
            "--timeout",
            "60s",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert_eq!(report["fence"]["lowered"], false);
    assert_eq!(
        report["fence"]["tables"],
        serde_json::json!(["dbo.a", "dbo.c x"])
    );
    let fenced_at_end = writer.counts().1;
    writer
        .wait("fence errors after the cutover", |_, f| {
            f >= fenced_at_end + 4
        })
        .await;
    let (committed, fenced) = writer.counts();
    writer.stop().await;
    assert!(committed > 40 && fenced > 0);
    // Nothing written after the fence reached the source: the source equals the cut-over target.
    for (source, target) in [("dbo.a", "public.a"), ("dbo.[c x]", "public.\"c x\"")] {
        let want = source_rows(&mut c, &format!("SELECT id, v FROM {source}")).await;
        let mut want = want;
        want.sort();
        let mut got = target_rows(&pg, target, &["id", "v"], "1").await;
        got.sort();
        assert_eq!(want, got, "{source}");
    }
    assert_eq!(fence_triggers(&mut c).await, 2);
    // `check` names the fence and how to lift it; the printed undo lifts it.
    let check = String::from_utf8_lossy(&replicator(&cfg, &["check", "--json"]).stdout).to_string();
    assert!(
        check.contains("fenced it")
            && check.contains("DROP TRIGGER IF EXISTS [dbo].[replicator_fence_"),
        "{check}"
    );
    exec(&mut c, report["fence"]["undo_sql"].as_str().unwrap()).await;
    assert_eq!(fence_triggers(&mut c).await, 0);
    exec(&mut c, "INSERT INTO dbo.a (v) VALUES (N'again')").await;
}

/// A CDC table streamed once and the daemon stopped, on a simulator whose capture job reads the
/// log every 5 s (SQL Server Agent's default); returns once the job has just run.
async fn slow_capture(hint: &str) -> (Env, Tds, &'static str) {
    let env = Env::with_sim(hint, |c| c.cdc_polling_interval = Duration::from_secs(5)).await;
    let mut c = env.tds().await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(
        &mut c,
        "CREATE TABLE dbo.c (id int NOT NULL PRIMARY KEY, v int NOT NULL)",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'c', @role_name = NULL").await;
    exec(&mut c, "INSERT INTO dbo.c VALUES (1, 1)").await;
    let cfg = "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.c\"\n";
    let d = Daemon::start(env.config(cfg));
    d.wait_state(
        &["dbo.c"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    // A probe row reaching the change table shows the job just ran.
    exec(&mut c, "INSERT INTO dbo.c VALUES (2, 0)").await;
    eventually("the capture job ran", Duration::from_secs(30), || {
        let env = &env;
        async move {
            let mut c = env.tds().await;
            let r = source_rows(&mut c, "SELECT COUNT(*) FROM cdc.dbo_c_CT").await;
            r[0][0].as_deref() == Some("2")
        }
    })
    .await;
    (env, c, cfg)
}

/// Commits 20 rows the capture job has not read yet (the application then stops), cuts over,
/// and requires all 22 rows on the target.
async fn commit_then_cut_over(env: &Env, c: &mut Tds, cfg: &str) {
    let values: Vec<String> = (3..=22).map(|i| format!("({i}, {i})")).collect();
    exec(
        c,
        &format!("INSERT INTO dbo.c VALUES {}", values.join(", ")),
    )
    .await;
    let report = replicator::cutover::run(env.config(cfg), {
        let mut o = replicator::cutover::Options::new(false);
        o.timeout = Duration::from_secs(60);
        o
    })
    .await
    .unwrap();
    assert!(report.ok, "{}", report.render());
    let t = &report.tables[0];
    assert_eq!(
        (t.source_rows, t.target_rows),
        (22, 22),
        "{}",
        report.render()
    );
    let n: i64 = env
        .pg()
        .await
        .query_one("SELECT count(*) FROM public.c", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_cutover_waits_for_a_capture_job_on_sql_servers_default_polling() {
    let (env, mut c, cfg) = slow_capture("slowcdc").await;
    commit_then_cut_over(&env, &mut c, cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_cutover_is_not_misled_by_a_mapping_from_before_the_clock_was_set_back() {
    let (env, mut c, cfg) = slow_capture("clockback").await;
    // A commit mapped an hour "ahead" of the server's clock, as when the clock is set back
    // (daylight saving time ends): its time is after the drain's start, its LSN before it.
    env.source_pg()
        .await
        .batch_execute(
            "INSERT INTO cdc.lsn_time_mapping VALUES (_sim.cdc_next_lsn(), \
             localtimestamp(3) + interval '1 hour', localtimestamp(3) + interval '1 hour', '\\x00'::bytea)",
        )
        .await
        .unwrap();
    commit_then_cut_over(&env, &mut c, cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rowversion_columns_keep_counting_on_postgresql_after_cutover() {
    let env = Env::new("rowversion").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.doc (id int NOT NULL PRIMARY KEY, body nvarchar(20) NOT NULL, rv rowversion); \
         ALTER TABLE dbo.doc ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.doc (id, body) VALUES (1, N'a'), (2, N'b'); UPDATE dbo.doc SET body = N'bb' WHERE id = 2",
    )
    .await;
    let cfg = env
        .config_file("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.doc\"\n");
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let source: Vec<Vec<Option<String>>> = source_rows(
        &mut c,
        "SELECT id, CAST(rv AS bigint) FROM dbo.doc ORDER BY id",
    )
    .await;
    let dbts: i64 = source_rows(&mut c, "SELECT CAST(@@DBTS AS bigint)").await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let report = cutover_succeeds(&cfg);
    let _ = daemon.wait();
    assert!(
        report["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.starts_with("rowversion public.doc.rv"))),
        "{report:#}"
    );
    let pg = env.pg().await;
    let rv = |id: i32| {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT ('x' || encode(rv, 'hex'))::bit(64)::bigint FROM public.doc WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    // The copied values are the source's.
    for row in &source {
        let id: i32 = row[0].as_deref().unwrap().parse().unwrap();
        assert_eq!(Some(rv(id).await.to_string()), row[1].clone());
    }
    // The application's insert gets the next value after the source's counter, its update a
    // newer one still, as on SQL Server.
    pg.batch_execute("INSERT INTO public.doc (id, body) VALUES (3, 'c')")
        .await
        .unwrap();
    let inserted = rv(3).await;
    assert!(inserted > dbts, "{inserted} after {dbts}");
    let old = rv(1).await;
    pg.batch_execute("UPDATE public.doc SET body = 'A' WHERE id = 1")
        .await
        .unwrap();
    let updated = rv(1).await;
    assert!(updated > inserted && updated != old, "{old} -> {updated}");
    pg.batch_execute("UPDATE public.doc SET body = 'A', rv = '\\x00' WHERE id = 2")
        .await
        .unwrap();
    assert!(rv(2).await > updated, "an update cannot set it");
}
