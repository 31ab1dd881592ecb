//! Change Data Capture through TCP, against Microsoft's documented semantics and the queries
//! Debezium sends.

use crate::common::*;

async fn cdc_db(c: &mut Tds) {
    exec(
        c,
        "CREATE DATABASE shop; USE shop; EXEC sys.sp_cdc_enable_db",
    )
    .await;
    exec(
        c,
        "CREATE TABLE dbo.orders (id int PRIMARY KEY, status nvarchar(20), total decimal(10,2))",
    )
    .await;
    exec(
        c,
        "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @supports_net_changes = 1",
    )
    .await;
}

/// Waits (with a deadline) until the capture job has moved changes up to the source's work.
async fn wait_captured(c: &mut Tds, rows_expected: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = rows(c, "SELECT COUNT(*) FROM cdc.dbo_orders_CT").await[0]
            .get::<i32, _>(0)
            .unwrap();
        if n >= rows_expected {
            assert_eq!(n, rows_expected, "no more change rows than expected");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "capture job did not deliver {rows_expected} rows (has {n})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn capture_instances_and_all_changes() {
    let s = sim("cdc_all").await;
    let mut c = connect(&s).await;
    cdc_db(&mut c).await;
    let r = rows(
        &mut c,
        "SELECT is_cdc_enabled FROM sys.databases WHERE name = 'shop'",
    )
    .await;
    assert_eq!(r[0].get::<bool, _>(0), Some(true));
    let r = rows(&mut c, "SELECT capture_instance, supports_net_changes, OBJECT_NAME(source_object_id) FROM cdc.change_tables").await;
    assert_eq!(
        (
            r[0].get::<&str, _>(0),
            r[0].get::<bool, _>(1),
            r[0].get::<&str, _>(2)
        ),
        (Some("dbo_orders"), Some(true), Some("orders"))
    );
    let from = rows(&mut c, "SELECT sys.fn_cdc_get_min_lsn('dbo_orders')").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    exec(
        &mut c,
        "INSERT INTO dbo.orders VALUES (1, N'new', 10.00), (2, N'new', 20.00)",
    )
    .await;
    exec(&mut c, "BEGIN TRAN; UPDATE dbo.orders SET status = N'paid' WHERE id = 1; DELETE FROM dbo.orders WHERE id = 2; COMMIT").await;
    // Capture is asynchronous: the change table fills after the polling interval.
    wait_captured(&mut c, 5).await;
    let to = rows(&mut c, "SELECT sys.fn_cdc_get_max_lsn()").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    assert_eq!(to.len(), 10);
    assert!(to > from, "LSNs compare as big-endian bytes");
    let r = c
        .query("SELECT __$operation, id, status FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, @P2, N'all')", &[&from.as_slice(), &to.as_slice()])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let got: Vec<(i32, i32, Option<String>)> = r
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                r.get::<&str, _>(2).map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 1, Some("new".into())),
            (2, 2, Some("new".into())),
            (4, 1, Some("paid".into())),
            (1, 2, Some("new".into()))
        ],
        "'all' gives only after-images of updates"
    );
    let r = c
        .query(
            "SELECT __$operation, status, sys.fn_cdc_has_column_changed('dbo_orders', 'status', __$update_mask) AS s, \
             sys.fn_cdc_has_column_changed('dbo_orders', 'total', __$update_mask) AS t FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, @P2, N'all update old') WHERE __$operation IN (3, 4)",
            &[&from.as_slice(), &to.as_slice()],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let got: Vec<(i32, String, bool, bool)> = r
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap(),
                r.get::<&str, _>(1).unwrap().into(),
                r.get(2).unwrap(),
                r.get(3).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "new".into(), true, false),
            (4, "paid".into(), true, false)
        ]
    );
    // A window outside the valid range is SQL Server's error 313.
    let past = rows(
        &mut c,
        "SELECT sys.fn_cdc_increment_lsn(sys.fn_cdc_get_max_lsn())",
    )
    .await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    let code = {
        let e = c
            .query(
                "SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(@P1, @P2, N'all')",
                &[&from.as_slice(), &past.as_slice()],
            )
            .await;
        let code = match e {
            Err(tiberius::error::Error::Server(e)) => e.code(),
            Ok(st) => match st.into_results().await {
                Err(tiberius::error::Error::Server(e)) => e.code(),
                other => panic!("expected error 313, got {other:?}"),
            },
            Err(other) => panic!("{other}"),
        };
        code
    };
    assert_eq!(code, 313);
    // Net changes: one row per key over the window.
    let r = c
        .query("SELECT __$operation, id, status FROM cdc.fn_cdc_get_net_changes_dbo_orders(@P1, @P2, N'all') ORDER BY id", &[&from.as_slice(), &to.as_slice()])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let got: Vec<(i32, i32)> = r
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![(2, 1)],
        "key 1 was inserted in the window (2); key 2 was inserted and deleted (nothing)"
    );
    // TRUNCATE is refused on a CDC-enabled table.
    assert_eq!(
        error_number(&mut c, "TRUNCATE TABLE dbo.orders").await,
        4711
    );
}

#[tokio::test]
async fn debezium_reads_a_window() {
    let s = sim("cdc_debezium").await;
    let mut c = connect(&s).await;
    cdc_db(&mut c).await;
    exec(&mut c, "INSERT INTO dbo.orders VALUES (1, N'a', 1.00); INSERT INTO dbo.orders VALUES (2, N'b', 2.00); UPDATE dbo.orders SET total = 3.00 WHERE id = 1").await;
    exec(&mut c, "EXEC sys.sp_cdc_scan").await;
    // The queries Debezium's SqlServerConnection sends.
    let max = rows(&mut c, "SELECT sys.fn_cdc_get_max_lsn()").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    let min = c
        .query("SELECT sys.fn_cdc_get_min_lsn(@P1)", &[&"dbo_orders"])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    let next = c
        .query("SELECT sys.fn_cdc_increment_lsn(@P1)", &[&min.as_slice()])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    assert!(next > min);
    let r = c
        .query(
            "SELECT *, m.tran_end_time FROM cdc.[dbo_orders_CT] ct LEFT JOIN cdc.lsn_time_mapping m ON ct.__$start_lsn = m.start_lsn \
             WHERE ct.__$start_lsn > @P1 AND ct.__$start_lsn <= @P2 ORDER BY ct.__$start_lsn, ct.__$command_id, ct.__$seqval, ct.__$operation",
            &[&min.as_slice(), &max.as_slice()],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let ops: Vec<i32> = r
        .iter()
        .map(|r| r.get::<i32, _>("__$operation").unwrap())
        .collect();
    assert_eq!(ops, vec![2, 2, 3, 4]);
    // Both images of an update share the sequence value; each transaction has its own LSN.
    assert_eq!(
        r[2].get::<&[u8], _>("__$seqval"),
        r[3].get::<&[u8], _>("__$seqval")
    );
    assert!(r[0].get::<&[u8], _>("__$start_lsn") < r[1].get::<&[u8], _>("__$start_lsn"));
    assert!(r
        .iter()
        .all(|r| r.get::<chrono::NaiveDateTime, _>("tran_end_time").is_some()));
    let total: rust_decimal::Decimal = r[3].get("total").unwrap();
    assert_eq!(
        total.to_string(),
        "3.00",
        "captured columns keep their declared types"
    );
    // A new column is not captured by the existing instance; a second instance picks it up.
    exec(&mut c, "ALTER TABLE dbo.orders ADD note nvarchar(50) NULL").await;
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @capture_instance = N'dbo_orders_v2'").await;
    exec(
        &mut c,
        "UPDATE dbo.orders SET note = N'hello' WHERE id = 2; EXEC sys.sp_cdc_scan",
    )
    .await;
    let cols = rows(&mut c, "SELECT COUNT(*) FROM cdc.captured_columns cc JOIN cdc.change_tables t ON t.object_id = cc.object_id WHERE t.capture_instance = 'dbo_orders_v2'").await;
    assert_eq!(cols[0].get::<i32, _>(0), Some(4));
    let r = rows(
        &mut c,
        "SELECT note FROM cdc.dbo_orders_v2_CT WHERE __$operation = 4",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("hello"));
    let r = rows(
        &mut c,
        "SELECT COUNT(*) FROM cdc.dbo_orders_CT WHERE __$operation = 4",
    )
    .await;
    assert_eq!(
        r[0].get::<i32, _>(0),
        Some(2),
        "the old instance still captures, without the new column"
    );
    assert_eq!(
        error_number(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL, @capture_instance = N'third'").await,
        22962,
        "at most two capture instances"
    );
    // Cleanup raises the instance's minimum LSN.
    exec(&mut c, &format!("EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_orders', @low_water_mark = 0x{}", mssql_sim::value::hex(&max))).await;
    let min2 = c
        .query("SELECT sys.fn_cdc_get_min_lsn(@P1)", &[&"dbo_orders"])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    assert_eq!(min2, max);
}

#[tokio::test]
async fn ddl_history_retention_cleanup_and_disable() {
    let (s, backing_db) = sim_with_backing("cdc_retention").await;
    let mut c = connect(&s).await;
    cdc_db(&mut c).await;
    exec(&mut c, "INSERT INTO dbo.orders VALUES (1, N'a', 1.00); INSERT INTO dbo.orders VALUES (2, N'b', 2.00)").await;
    wait_captured(&mut c, 2).await;
    // A schema change of a captured table is recorded.
    exec(&mut c, "ALTER TABLE dbo.orders ADD note nvarchar(10) NULL").await;
    let r = rows(
        &mut c,
        "SELECT OBJECT_NAME(source_object_id), ddl_command FROM cdc.ddl_history",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("orders"));
    assert!(
        r[0].get::<&str, _>(1)
            .unwrap()
            .to_uppercase()
            .contains("ADD"),
        "{:?}",
        r[0].get::<&str, _>(1)
    );
    // Retention: changes older than it go, and the minimum LSN rises past them.
    exec(
        &mut c,
        "EXEC sys.sp_cdc_change_job @job_type = N'cleanup', @retention = 60",
    )
    .await;
    let min_before = rows(&mut c, "SELECT sys.fn_cdc_get_min_lsn('dbo_orders')").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    let pg_url = testkit::pg().url_for(&mssql_sim::server::pg_name_for(&backing_db, "shop"));
    let pg = testkit::connect(&pg_url).await;
    // Age everything captured so far by two hours, then make one fresh change.
    pg.batch_execute("UPDATE cdc.lsn_time_mapping SET tran_begin_time = tran_begin_time - interval '2 hours', tran_end_time = tran_end_time - interval '2 hours'").await.unwrap();
    exec(&mut c, "UPDATE dbo.orders SET status = N'c' WHERE id = 1").await;
    // Capture and cleanup both run in the background: wait for the state where only the fresh
    // update's before and after images remain.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = rows(
            &mut c,
            "SELECT __$operation FROM cdc.dbo_orders_CT ORDER BY __$seqval, __$operation",
        )
        .await;
        let ops: Vec<i32> = r.iter().map(|r| r.get::<i32, _>(0).unwrap()).collect();
        if ops == vec![3, 4] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention cleanup did not leave only the recent update: {ops:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let min_after = rows(&mut c, "SELECT sys.fn_cdc_get_min_lsn('dbo_orders')").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    assert!(min_after > min_before);
    let r = rows(
        &mut c,
        "SELECT __$operation FROM cdc.dbo_orders_CT ORDER BY __$seqval, __$operation",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r.get::<i32, _>(0).unwrap())
            .collect::<Vec<_>>(),
        vec![3, 4],
        "the recent update remains"
    );
    // Disabling removes the instance; the table is no longer captured and may be truncated.
    exec(&mut c, "EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'orders', @capture_instance = N'all'").await;
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM cdc.change_tables").await[0].get::<i32, _>(0),
        Some(0)
    );
    exec(
        &mut c,
        "TRUNCATE TABLE dbo.orders; EXEC sys.sp_cdc_disable_db",
    )
    .await;
    assert_eq!(
        rows(
            &mut c,
            "SELECT is_cdc_enabled FROM sys.databases WHERE name = 'shop'"
        )
        .await[0]
            .get::<bool, _>(0),
        Some(false)
    );
}

#[tokio::test]
async fn column_lists_time_mapping_and_idle_markers() {
    let s = sim("cdc_columns").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE DATABASE shop; USE shop; EXEC sys.sp_cdc_enable_db",
    )
    .await;
    exec(
        &mut c,
        "CREATE TABLE dbo.people (id int PRIMARY KEY, name nvarchar(50), secret nvarchar(50))",
    )
    .await;
    exec(
        &mut c,
        "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'people', @role_name = NULL, @captured_column_list = N'id, name'",
    )
    .await;
    let r = rows(
        &mut c,
        "SELECT column_name FROM cdc.captured_columns ORDER BY column_ordinal",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r.get::<&str, _>(0).unwrap())
            .collect::<Vec<_>>(),
        vec!["id", "name"]
    );
    exec(
        &mut c,
        "INSERT INTO dbo.people VALUES (1, N'ann', N'hidden'); EXEC sys.sp_cdc_scan",
    )
    .await;
    let r = rows(&mut c, "SELECT name FROM cdc.dbo_people_CT").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("ann"));
    assert_eq!(
        server_error(&mut c, "SELECT secret FROM cdc.dbo_people_CT")
            .await
            .0,
        207,
        "an uncaptured column is not in the change table"
    );
    // Every LSN maps to its commit time.
    let r = rows(
        &mut c,
        "SELECT sys.fn_cdc_map_lsn_to_time(sys.fn_cdc_get_max_lsn()), GETDATE()",
    )
    .await;
    let (at, now): (chrono::NaiveDateTime, chrono::NaiveDateTime) =
        (r[0].get(0).unwrap(), r[0].get(1).unwrap());
    assert!((now - at).num_seconds().abs() < 60, "{at} vs {now}");
    // And back: an LSN committed at a known time is found from around that time.
    let r = rows(
        &mut c,
        "SELECT sys.fn_cdc_get_max_lsn(), sys.fn_cdc_map_lsn_to_time(sys.fn_cdc_get_max_lsn())",
    )
    .await;
    let (lsn, at): (Vec<u8>, chrono::NaiveDateTime) = (
        r[0].get::<&[u8], _>(0).unwrap().to_vec(),
        r[0].get(1).unwrap(),
    );
    let lit = |t: chrono::NaiveDateTime| t.format("'%Y-%m-%d %H:%M:%S%.3f'").to_string();
    let r = rows(
        &mut c,
        &format!(
            "SELECT sys.fn_cdc_map_time_to_lsn('smallest greater than or equal', CAST({} AS datetime)), \
                    sys.fn_cdc_map_time_to_lsn('largest less than or equal', CAST({} AS datetime)), \
                    sys.fn_cdc_map_time_to_lsn('smallest greater than', CAST({} AS datetime))",
            lit(at - chrono::Duration::seconds(1)),
            lit(at + chrono::Duration::seconds(1)),
            lit(at + chrono::Duration::seconds(3600))
        ),
    )
    .await;
    let first = r[0].get::<&[u8], _>(0).expect("an LSN at that time");
    let last = r[0].get::<&[u8], _>(1).expect("an LSN up to that time");
    assert!(
        first <= &lsn[..] && last >= &lsn[..],
        "{first:?} {lsn:?} {last:?}"
    );
    assert_eq!(
        r[0].get::<&[u8], _>(2),
        None,
        "nothing committed an hour from now"
    );
    assert_eq!(
        server_error(
            &mut c,
            "SELECT sys.fn_cdc_map_time_to_lsn('about', GETDATE())"
        )
        .await
        .0,
        22986
    );
    // While nothing changes, the capture job's idle markers still move the max LSN forward.
    let before = rows(&mut c, "SELECT sys.fn_cdc_get_max_lsn()").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = rows(&mut c, "SELECT sys.fn_cdc_get_max_lsn()").await[0]
            .get::<&[u8], _>(0)
            .unwrap()
            .to_vec();
        if now > before {
            let r = rows(&mut c, "SELECT COUNT(*) FROM cdc.lsn_time_mapping WHERE tran_id = 0x00 AND start_lsn > (SELECT MIN(start_lsn) FROM cdc.lsn_time_mapping)").await;
            assert!(
                r[0].get::<i32, _>(0).unwrap() >= 1,
                "the new max LSN is an idle marker"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no idle marker appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// What SQL Server leaves NULL in a change table (the cdc.<capture_instance>_CT page): computed
/// columns always; text, ntext and image in deletes and update before-images; the (max) types in
/// before-images unless they changed. The after-images carry every stored value. Also the
/// 'max text repl size' limit (error 7139) and the update-mask functions.
#[tokio::test]
async fn change_tables_hold_null_where_sql_server_stores_none() {
    let s = sim("cdc_nulls").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE DATABASE shop; USE shop; EXEC sys.sp_cdc_enable_db",
    )
    .await;
    exec(
        &mut c,
        "CREATE TABLE dbo.doc (id int NOT NULL PRIMARY KEY, qty int NOT NULL, price decimal(9,2) NOT NULL, \
           total AS qty * price PERSISTED, label AS (N'#' + CAST(id AS nvarchar(10))), \
           body nvarchar(max) NULL, blob varbinary(max) NULL, old_text ntext NULL, pic image NULL)",
    )
    .await;
    // The computed columns: typed from their expression, computed, with SQL Server's definition.
    let r = rows(&mut c, "SELECT name, TYPE_NAME(system_type_id), is_persisted, definition, COLUMNPROPERTY(object_id, name, 'IsDeterministic') FROM sys.computed_columns ORDER BY column_id").await;
    let got: Vec<(String, String, bool, String, i32)> = r
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().into(),
                r.get::<&str, _>(1).unwrap().into(),
                r.get::<bool, _>(2).unwrap(),
                r.get::<&str, _>(3).unwrap().into(),
                r.get::<i32, _>(4).unwrap(),
            )
        })
        .collect();
    assert_eq!(got[0].0, "total");
    assert_eq!(
        (got[0].1.as_str(), got[0].2, got[0].4),
        ("decimal", true, 1)
    );
    assert!(
        got[0].3.contains("[qty]") && got[0].3.contains("[price]"),
        "{got:?}"
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str(), got[1].2),
        ("label", "nvarchar", false)
    );
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'doc', @role_name = NULL").await;
    let r = rows(&mut c, "SELECT column_name FROM cdc.captured_columns WHERE is_computed = 1 ORDER BY column_ordinal").await;
    assert_eq!(r.len(), 2);
    exec(&mut c, "INSERT INTO dbo.doc (id, qty, price, body, blob, old_text, pic) VALUES (1, 2, 1.50, N'body', 0x0102, N'old', 0x0A0B)").await;
    let r = rows(&mut c, "SELECT total, label FROM dbo.doc").await;
    assert_eq!(r[0].get::<&str, _>(1), Some("#1"));
    // An update touching qty and body only, then one setting blob to NULL, then a delete.
    exec(
        &mut c,
        "UPDATE dbo.doc SET qty = 3, body = N'body 2' WHERE id = 1",
    )
    .await;
    exec(&mut c, "UPDATE dbo.doc SET blob = NULL WHERE id = 1").await;
    exec(&mut c, "DELETE FROM dbo.doc WHERE id = 1").await;
    exec(&mut c, "EXEC sys.sp_cdc_scan").await;
    let r = rows(
        &mut c,
        "SELECT __$operation, total, label, body, blob, old_text, pic, qty, \
           sys.fn_cdc_has_column_changed(N'dbo_doc', N'body', __$update_mask), \
           sys.fn_cdc_is_bit_set(sys.fn_cdc_get_column_ordinal(N'dbo_doc', N'blob'), __$update_mask) \
         FROM cdc.dbo_doc_CT ORDER BY __$start_lsn, __$seqval, __$operation",
    )
    .await;
    let null = |r: &tiberius::Row, i: usize| {
        r.try_get::<&str, _>(i).ok().flatten().is_none()
            && r.try_get::<&[u8], _>(i).ok().flatten().is_none()
            && r.try_get::<rust_decimal::Decimal, _>(i)
                .ok()
                .flatten()
                .is_none()
    };
    let ops: Vec<i32> = r.iter().map(|r| r.get::<i32, _>(0).unwrap()).collect();
    assert_eq!(ops, [2, 3, 4, 3, 4, 1]);
    for row in &r {
        assert!(
            null(row, 1) && null(row, 2),
            "computed columns are NULL in every change row"
        );
    }
    // Insert: every stored value.
    assert_eq!(r[0].get::<&str, _>(3), Some("body"));
    assert_eq!(r[0].get::<&[u8], _>(6), Some(&[0x0A, 0x0B][..]));
    // First update: before-image keeps the changed (max) column, drops the unchanged ones and the
    // legacy LOBs; the after-image holds every value.
    assert_eq!(r[1].get::<&str, _>(3), Some("body"));
    assert!(null(&r[1], 4) && null(&r[1], 5) && null(&r[1], 6));
    assert_eq!(r[2].get::<&str, _>(3), Some("body 2"));
    assert_eq!(r[2].get::<&[u8], _>(4), Some(&[1, 2][..]));
    assert_eq!(r[2].get::<&str, _>(5), Some("old"));
    assert_eq!(r[2].get::<bool, _>(8), Some(true));
    // Second update: blob changed (to NULL on purpose), body did not.
    assert!(
        null(&r[3], 3),
        "unchanged (max) column is NULL in the before-image"
    );
    assert_eq!(r[3].get::<&[u8], _>(4), Some(&[1, 2][..]));
    assert!(null(&r[4], 4));
    assert_eq!(r[4].get::<&str, _>(3), Some("body 2"));
    assert_eq!(
        (r[4].get::<bool, _>(8), r[4].get::<bool, _>(9)),
        (Some(false), Some(true))
    );
    // Delete: the (max) types hold their value, the legacy LOBs do not.
    assert_eq!(r[5].get::<&str, _>(3), Some("body 2"));
    assert!(null(&r[5], 5) && null(&r[5], 6));
    // max text repl size: 65,536 bytes by default, error 7139 beyond; -1 lifts it.
    let (n, msg) = server_error(&mut c, "INSERT INTO dbo.doc (id, qty, price, body) VALUES (2, 1, 1, REPLICATE(CAST(N'x' AS nvarchar(max)), 32769))").await;
    assert_eq!(n, 7139, "{msg}");
    assert!(msg.contains("65538") && msg.contains("65536"), "{msg}");
    exec(&mut c, "INSERT INTO dbo.doc (id, qty, price, body) VALUES (2, 1, 1, REPLICATE(CAST(N'x' AS nvarchar(max)), 32768))").await;
    exec(
        &mut c,
        "EXEC sp_configure 'max text repl size', -1; RECONFIGURE",
    )
    .await;
    exec(&mut c, "INSERT INTO dbo.doc (id, qty, price, body) VALUES (3, 1, 1, REPLICATE(CAST(N'y' AS nvarchar(max)), 40000))").await;
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM dbo.doc").await[0].get::<i32, _>(0),
        Some(2)
    );
}
