//! Cutover on a proof: the target write guard, a proof made while replication runs, and the
//! window's delta check, each shown to catch what it must (a difference planted on the target
//! where the delta looks, one hidden by altering the guard, a row added by an impersonator) and
//! to give no false alarm under a running writer.

use crate::common::*;
use std::time::Duration;

fn report_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `replicator validate --full --json` through the running daemon: the one table's result.
fn validate_full(cfg: &std::path::Path) -> serde_json::Value {
    report_of(&replicator(cfg, &["validate", "--full", "--json"]))[0].clone()
}

/// `replicator cutover --yes --json --validated-within 1h` (a recent proof is reused): its
/// report, whose `ok` the exit code must agree with.
fn cut_over(cfg: &std::path::Path) -> serde_json::Value {
    let out = replicator(
        cfg,
        &["cutover", "--yes", "--json", "--validated-within", "1h"],
    );
    let r = report_of(&out);
    assert_eq!(
        out.status.success(),
        r["ok"] == true,
        "exit code vs report: {r}"
    );
    r
}

/// Writes to the target as only the replicator may (what an impersonating session would do).
async fn impersonate(pg: &tokio_postgres::Client, sql: &str) {
    pg.batch_execute(&format!(
        "SET replicator.writer = 'on'; {sql}; RESET replicator.writer"
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn value_of(pg: &tokio_postgres::Client, id: i32) -> Option<String> {
    pg.query_opt("SELECT v FROM public.t WHERE id = $1", &[&id])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// `dbo.t (id, v)` with Change Tracking and `rows` rows, replicated by a running daemon and
/// streaming: the source session, the configuration file and the daemon.
async fn streaming_table(env: &Env, rows: i32) -> (Tds, std::path::PathBuf, std::process::Child) {
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    let values: Vec<String> = (1..=rows).map(|i| format!("({i}, N'v{i}')")).collect();
    exec(
        &mut c,
        &format!("INSERT INTO dbo.t VALUES {}", values.join(", ")),
    )
    .await;
    let cfg = env
        .config_file("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.t\"\n");
    let daemon = spawn_daemon(env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    (c, cfg, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_foreign_writes_and_the_delta_check_finds_what_was_planted() {
    let env = Env::new("proof").await;
    let (mut c, cfg, mut daemon) = streaming_table(&env, 200).await;

    // Another session cannot write a replicated table, not even as a replica.
    let pg = env.pg().await;
    for sql in [
        "UPDATE public.t SET v = 'x' WHERE id = 1",
        "INSERT INTO public.t VALUES (1000, 'x')",
        "TRUNCATE public.t",
        "SET session_replication_role = replica; DELETE FROM public.t",
    ] {
        let e = pg.batch_execute(sql).await.unwrap_err();
        let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
        assert!(
            db.message().contains("table public.t is replicated") && db.hint().is_some(),
            "{sql}: {}",
            db.message()
        );
        pg.batch_execute("RESET session_replication_role")
            .await
            .unwrap();
    }

    // A proof at P1, made while the daemon streams.
    let v = validate_full(&cfg);
    assert_eq!(v["result"], "equal", "{v}");
    assert_eq!(v["proven"], true, "{v}");

    // Key 5 changes after P1 and is replicated; then a difference is planted on it.
    exec(&mut c, "UPDATE dbo.t SET v = N'changed' WHERE id = 5").await;
    eventually("id 5 replicated", Duration::from_secs(30), || {
        let pg = &pg;
        async move { value_of(pg, 5).await.as_deref() == Some("changed") }
    })
    .await;
    impersonate(&pg, "UPDATE public.t SET v = 'planted' WHERE id = 5").await;
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], false);
    let t = &r["tables"][0];
    assert_eq!(t["check"], "delta", "the proof was reused: {r}");
    assert_eq!(t["keys_checked"], 1, "{r}");
    assert!(
        r["problems"]
            .to_string()
            .contains("dbo.t (id=5): values differ"),
        "{r}"
    );
    assert!(
        daemon.wait().unwrap().success(),
        "the daemon stopped cleanly"
    );

    // The guard disabled to plant a difference on a key that did not change: the proof no
    // longer holds, every row is compared, the difference is found.
    impersonate(&pg, "UPDATE public.t SET v = 'changed' WHERE id = 5").await;
    pg.batch_execute(
        "ALTER TABLE public.t DISABLE TRIGGER replicator_guard; \
         UPDATE public.t SET v = 'hidden' WHERE id = 50; \
         ALTER TABLE public.t ENABLE ALWAYS TRIGGER replicator_guard",
    )
    .await
    .unwrap();
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], false, "{r}");
    let t = &r["tables"][0];
    assert_eq!(t["check"], "full", "{r}");
    assert!(
        t["why_full"].as_str().unwrap().contains("write guard"),
        "{r}"
    );
    assert!(
        r["problems"]
            .to_string()
            .contains("dbo.t (id=50): values differ"),
        "{r}"
    );

    // The daemon again: cutover repairs id 50 while proving, then a row added by an
    // impersonator after the proof (on a key the source never had) shows in the counts.
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let out = replicator(&cfg, &["validate", "--full", "--repair", "--json"]);
    let v = report_of(&out)[0].clone();
    assert_eq!(v["result"], "repaired", "{v}");
    assert_eq!(value_of(&pg, 50).await.as_deref(), Some("v50"));
    assert_eq!(validate_full(&cfg)["proven"], true);
    impersonate(&pg, "INSERT INTO public.t VALUES (9999, 'extra')").await;
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["tables"][0]["check"], "delta", "{r}");
    assert_eq!(
        (
            r["tables"][0]["source_rows"].clone(),
            r["tables"][0]["target_rows"].clone()
        ),
        (200.into(), 201.into()),
        "{r}"
    );
    assert!(
        r["problems"].to_string().contains("the counts differ"),
        "{r}"
    );
    assert!(daemon.wait().unwrap().success());

    // Clean again: the cutover succeeds on the delta, and the table takes writes afterwards.
    impersonate(&pg, "DELETE FROM public.t WHERE id = 9999").await;
    exec(&mut c, "UPDATE dbo.t SET v = N'late' WHERE id = 7").await;
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], true, "{r}");
    let t = &r["tables"][0];
    assert_eq!(
        (t["check"].clone(), t["keys_checked"].clone()),
        ("delta".into(), 1.into()),
        "{r}"
    );
    assert_eq!(value_of(&pg, 7).await.as_deref(), Some("late"));
    pg.batch_execute("UPDATE public.t SET v = 'app' WHERE id = 1")
        .await
        .unwrap();
}

/// One round: a fresh copy streaming under a running writer, a proof, a change after it, a
/// planted difference or none, and a fenced cutover on the proof; whether it reported ok.
async fn round(planted: bool) -> serde_json::Value {
    let env = Env::new(if planted { "planted" } else { "clean" }).await;
    let (mut c, cfg, mut daemon) = streaming_table(&env, 300).await;
    // The writer: updates and inserts keys above 100, until the fence refuses it.
    let mut w = env.tds().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0u32;
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            i += 1;
            let sql = format!(
                "UPDATE dbo.t SET v = N'w{i}' WHERE id = {}; INSERT INTO dbo.t VALUES ({}, N'n{i}')",
                101 + i % 200,
                1000 + i
            );
            if let Ok(q) = w.simple_query(sql).await {
                let _ = q.into_results().await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let v = validate_full(&cfg);
    assert_eq!(v["proven"], true, "{v}");
    exec(&mut c, "UPDATE dbo.t SET v = N'after' WHERE id = 3").await;
    let pg = env.pg().await;
    eventually("id 3 replicated", Duration::from_secs(30), || {
        let pg = &pg;
        async move { value_of(pg, 3).await.as_deref() == Some("after") }
    })
    .await;
    if planted {
        impersonate(&pg, "UPDATE public.t SET v = 'planted' WHERE id = 3").await;
    }
    let out = replicator(
        &cfg,
        &[
            "cutover",
            "--yes",
            "--json",
            "--fence-source",
            "--validated-within",
            "1h",
            "--timeout",
            "60s",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let r = report_of(&out);
    assert!(daemon.wait().unwrap().success());
    assert_eq!(r["tables"][0]["check"], "delta", "{r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_cutovers_under_a_writer_never_miss_a_plant_and_never_false_alarm() {
    for planted in [true, false, true, false] {
        let r = round(planted).await;
        assert_eq!(r["ok"], !planted, "planted: {planted}: {r}");
        if planted {
            assert!(
                r["problems"]
                    .to_string()
                    .contains("dbo.t (id=3): values differ"),
                "{r}"
            );
        } else {
            assert!(r["tables"][0]["keys_checked"].as_i64().unwrap() >= 1, "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdc_table_is_checked_by_its_delta_from_the_change_table() {
    let env = Env::new("proofcdc").await;
    let mut c = env.tds().await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(
        &mut c,
        "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL)",
    )
    .await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't', @role_name = NULL").await;
    let values: Vec<String> = (1..=100).map(|i| format!("({i}, N'v{i}')")).collect();
    exec(
        &mut c,
        &format!("INSERT INTO dbo.t VALUES {}", values.join(", ")),
    )
    .await;
    let cfg = env
        .config_file("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.t\"\n");
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    assert_eq!(validate_full(&cfg)["proven"], true);
    // After the proof: an update, a delete and an insert, one of them then planted on.
    exec(&mut c, "UPDATE dbo.t SET v = N'u' WHERE id = 2; DELETE FROM dbo.t WHERE id = 3; INSERT INTO dbo.t VALUES (500, N'new')").await;
    let pg = env.pg().await;
    eventually("the changes replicated", Duration::from_secs(30), || {
        let pg = &pg;
        async move { value_of(pg, 500).await.is_some() && value_of(pg, 3).await.is_none() }
    })
    .await;
    impersonate(&pg, "UPDATE public.t SET v = 'planted' WHERE id = 500").await;
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["tables"][0]["check"], "delta", "{r}");
    assert_eq!(r["tables"][0]["keys_checked"], 3, "{r}");
    assert!(
        r["problems"]
            .to_string()
            .contains("dbo.t (id=500): values differ"),
        "{r}"
    );
    assert!(daemon.wait().unwrap().success());
    impersonate(&pg, "UPDATE public.t SET v = 'new' WHERE id = 500").await;
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        (
            r["tables"][0]["check"].clone(),
            r["tables"][0]["source_rows"].clone()
        ),
        ("delta".into(), 100.into()),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_the_replicator_does_not_own_streams_unguarded_and_is_compared_in_full() {
    let env = Env::new("notowner").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(20) NOT NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING; INSERT INTO dbo.t VALUES (1, N'a'), (2, N'b')").await;
    // The replicator logs in as a role that may write public.t but does not own it.
    let db = env.target_url.rsplit('/').next().unwrap().to_string();
    let role = format!("{db}_repl");
    let pg = env.pg().await;
    pg.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE {db} TO {role}; GRANT USAGE, CREATE ON SCHEMA public TO {role}; \
         CREATE TABLE public.t (id integer NOT NULL PRIMARY KEY, v varchar(20) NOT NULL); GRANT ALL ON public.t TO {role}"
    ))
    .await
    .unwrap();
    let url = env.target_url.replacen("postgres@", &format!("{role}@"), 1);
    let text = env
        .config_text("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.t\"\n")
        .replace(&env.target_url, &url);
    let cfg = env.dir.join("replicator.toml");
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let guards: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'replicator_guard'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(guards, 0, "no guard on a table the replicator does not own");
    let v = validate_full(&cfg);
    assert_eq!(
        (v["result"].clone(), v["proven"].clone()),
        ("equal".into(), false.into()),
        "{v}"
    );
    exec(&mut c, "UPDATE dbo.t SET v = N'c' WHERE id = 2").await;
    let out = replicator(&cfg, &["cutover", "--yes", "--json"]);
    let r = report_of(&out);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["tables"][0]["check"], "full", "{r}");
    assert_eq!(r["tables"][0]["source_rows"], 2, "{r}");
    assert!(daemon.wait().unwrap().success());
    assert_eq!(value_of(&pg, 2).await.as_deref(), Some("c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_guard_function_voids_the_proof() {
    let env = Env::new("guardfn").await;
    let (_c, cfg, mut daemon) = streaming_table(&env, 50).await;
    assert_eq!(validate_full(&cfg)["proven"], true);
    // The owner makes the guard let everything through, writes, and puts it back as it was.
    let pg = env.pg().await;
    let body: String = pg
        .query_one(
            "SELECT pg_get_functiondef('replicator.refuse_foreign_write'::regproc)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    pg.batch_execute(
        "CREATE OR REPLACE FUNCTION replicator.refuse_foreign_write() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$",
    )
    .await
    .unwrap();
    // No proof is recorded under a guard that guards nothing.
    let v = validate_full(&cfg);
    assert_eq!(
        (v["result"].clone(), v["proven"].clone()),
        ("equal".into(), false.into()),
        "{v}"
    );
    pg.batch_execute("UPDATE public.t SET v = 'slipped' WHERE id = 9")
        .await
        .unwrap();
    pg.batch_execute(&body).await.unwrap();
    let r = cut_over(&cfg);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["tables"][0]["check"], "full", "{r}");
    assert!(
        r["tables"][0]["why_full"]
            .as_str()
            .unwrap()
            .contains("write guard"),
        "{r}"
    );
    assert!(
        r["problems"]
            .to_string()
            .contains("dbo.t (id=9): values differ"),
        "{r}"
    );
    assert!(daemon.wait().unwrap().success());
}
