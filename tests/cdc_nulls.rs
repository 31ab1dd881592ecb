//! What a CDC change table does not hold (computed columns, LOB before-images) never reaches
//! the target as NULL: the target equals the source value by value after every step, in CDC mode
//! and, as a control, in Change Tracking mode.

use crate::common::*;
use std::time::Duration;

const TABLE: &str = "CREATE TABLE dbo.doc (id int NOT NULL PRIMARY KEY, qty int NOT NULL, price decimal(9,2) NOT NULL, \
    total AS qty * price PERSISTED, label AS (N'#' + CAST(id AS nvarchar(10)) + N':' + CAST(qty AS nvarchar(10))), \
    body nvarchar(max) NULL, blob varbinary(max) NULL, old_text ntext NULL, pic image NULL)";

const COLUMNS: [&str; 9] = [
    "id", "qty", "price", "total", "label", "body", "blob", "old_text", "pic",
];

/// Inserts, updates that touch and that do not touch each column, an update that sets a LOB to
/// NULL on purpose, deletes: equality checked after each step.
async fn steps(c: &mut Tds, pg: &tokio_postgres::Client, cdc: bool) {
    let all = format!("SELECT {} FROM dbo.doc", COLUMNS.join(", "));
    let steps = [
        "INSERT INTO dbo.doc (id, qty, price, body, blob, old_text, pic) VALUES \
           (10, 2, 1.50, N'body ☃', 0x0102, N'old text', 0x0A0B), (11, 1, 9.99, NULL, NULL, NULL, NULL), \
           (12, 4, 0.25, REPLICATE(CAST(N'long ' AS nvarchar(max)), 3000), 0xFF, N'x', 0x00)",
        // Touches qty (so both computed columns) and body, not blob, old_text or pic.
        "UPDATE dbo.doc SET qty = qty + 1, body = N'body 2' WHERE id = 10",
        // Touches only the legacy LOBs.
        "UPDATE dbo.doc SET old_text = N'new old text', pic = 0x0C WHERE id = 10",
        // Touches nothing LOB: the after-image still carries every LOB value.
        "UPDATE dbo.doc SET price = 2.00 WHERE id IN (10, 12)",
        // A LOB set to NULL on purpose, and one set from NULL.
        "UPDATE dbo.doc SET blob = NULL, body = N'from null' WHERE id IN (10, 11)",
        // Two changes of one row in one transaction, then a delete.
        "BEGIN TRAN; UPDATE dbo.doc SET qty = 7 WHERE id = 12; UPDATE dbo.doc SET body = NULL WHERE id = 12; COMMIT",
        "DELETE FROM dbo.doc WHERE id = 11",
    ];
    for (i, sql) in steps.iter().enumerate() {
        exec(c, sql).await;
        if cdc {
            exec(c, "EXEC sys.sp_cdc_scan").await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut want = source_rows(c, &all).await;
            let mut got = target_rows(pg, "public.doc", &COLUMNS, "id").await;
            want.sort();
            got.sort();
            if want == got {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "step {i} ({sql}): target never equalled the source:\n source {want:?}\n target {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_computed_columns_and_lobs_arrive_as_stored() {
    let env = Env::new("cdc_nulls").await;
    let mut c = env.tds().await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(&mut c, TABLE).await;
    exec(&mut c, "INSERT INTO dbo.doc (id, qty, price, body, blob, old_text, pic) VALUES (1, 3, 2.50, N'first', 0x01, N'o', 0x02)").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'doc', @role_name = NULL").await;
    let d = Daemon::start(env.config(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.doc\"\nchange_source = \"cdc\"\n",
    ));
    d.wait_state(
        &["dbo.doc"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    steps(&mut c, &pg, true).await;
    // The change table really holds NULL for them (what a real SQL Server does).
    let nulls = source_rows(
        &mut c,
        "SELECT COUNT(*) FROM cdc.dbo_doc_CT WHERE total IS NOT NULL OR label IS NOT NULL",
    )
    .await;
    assert_eq!(nulls, vec![vec![Some("0".to_string())]]);
    assert!(d.table("dbo.doc").unwrap().last_error.is_none());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_table_under_change_tracking() {
    let env = Env::new("ct_nulls").await;
    let mut c = env.tds().await;
    exec(&mut c, TABLE).await;
    exec(&mut c, "ALTER TABLE dbo.doc ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.doc (id, qty, price, body, blob, old_text, pic) VALUES (1, 3, 2.50, N'first', 0x01, N'o', 0x02)").await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.doc\"\n"),
    );
    d.wait_state(
        &["dbo.doc"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    steps(&mut c, &pg, false).await;
    d.stop().await.unwrap();
}

/// `check` names the computed columns and the LOB limit of a CDC table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_cdc_computed_columns_and_the_lob_limit() {
    let env = Env::new("cdc_check").await;
    let mut c = env.tds().await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_db").await;
    exec(&mut c, TABLE).await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'doc', @role_name = NULL").await;
    let cfg = env.config_file("[[tables]]\nsource = \"dbo.doc\"\n");
    let out = replicator(&cfg, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("column total is computed: CDC change rows hold NULL for it"),
        "{text}"
    );
    assert!(
        text.contains("LOB column(s) body, blob, old_text, pic on a CDC table"),
        "{text}"
    );
    assert!(
        text.contains("65536 bytes") && text.contains("7139"),
        "{text}"
    );
    exec(
        &mut c,
        "EXEC sp_configure 'max text repl size', -1; RECONFIGURE",
    )
    .await;
    let out = replicator(&cfg, &["check"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("LOB column(s)"));
}
