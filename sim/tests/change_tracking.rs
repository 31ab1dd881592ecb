//! Change Tracking through TCP, against Microsoft's documented semantics.

use crate::common::*;

async fn ct_db(c: &mut Tds) {
    exec(c, "CREATE DATABASE shop").await;
    exec(c, "ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)").await;
    exec(c, "ALTER DATABASE shop SET ALLOW_SNAPSHOT_ISOLATION ON").await;
    exec(c, "USE shop").await;
}

fn version(r: &[tiberius::Row]) -> i64 {
    r[0].get::<i64, _>(0).expect("a version")
}

/// (id, operation, version, current value) from the documented CHANGETABLE join, in version order.
async fn changes(c: &mut Tds, since: i64) -> Vec<(i32, String, i64, Option<String>)> {
    let r = c
        .query(
            "SELECT CT.id, CT.SYS_CHANGE_OPERATION, CT.SYS_CHANGE_VERSION, T.v FROM CHANGETABLE(CHANGES dbo.t, @P1) AS CT \
             LEFT OUTER JOIN dbo.t AS T ON T.id = CT.id ORDER BY CT.SYS_CHANGE_VERSION, CT.id",
            &[&since],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    r.iter()
        .map(|r| {
            (
                r.get::<i32, _>("id").unwrap(),
                r.get::<&str, _>("SYS_CHANGE_OPERATION")
                    .unwrap()
                    .to_string(),
                r.get::<i64, _>("SYS_CHANGE_VERSION").unwrap(),
                r.get::<&str, _>("v").map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn enabling_follows_the_rules() {
    let s = sim("ct_enable").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE DATABASE shop; USE shop").await;
    exec(
        &mut c,
        "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20)); CREATE TABLE dbo.nokey (x int)",
    )
    .await;
    assert_eq!(
        rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await[0].get::<i64, _>(0),
        None,
        "NULL while CT is off"
    );
    assert_eq!(
        error_number(&mut c, "ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await,
        4996
    );
    exec(&mut c, "ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 90 MINUTES, AUTO_CLEANUP = OFF)").await;
    assert_eq!(
        error_number(&mut c, "ALTER TABLE dbo.nokey ENABLE CHANGE_TRACKING").await,
        4997
    );
    exec(
        &mut c,
        "ALTER TABLE dbo.t ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = ON)",
    )
    .await;
    let r = rows(&mut c, "SELECT is_auto_cleanup_on, retention_period, retention_period_units_desc FROM sys.change_tracking_databases").await;
    assert_eq!(
        (
            r[0].get::<bool, _>(0),
            r[0].get::<i32, _>(1),
            r[0].get::<&str, _>(2)
        ),
        (Some(false), Some(90), Some("MINUTES"))
    );
    let r = rows(&mut c, "SELECT OBJECT_NAME(object_id), is_track_columns_updated_on, min_valid_version FROM sys.change_tracking_tables").await;
    assert_eq!(
        (
            r[0].get::<&str, _>(0),
            r[0].get::<bool, _>(1),
            r[0].get::<i64, _>(2)
        ),
        (Some("t"), Some(true), Some(0))
    );
    assert_eq!(
        rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await[0].get::<i64, _>(0),
        Some(0)
    );
    assert_eq!(
        error_number(&mut c, "ALTER DATABASE shop SET CHANGE_TRACKING = OFF").await,
        22115
    );
    assert_eq!(
        error_number(
            &mut c,
            "SELECT * FROM CHANGETABLE(CHANGES dbo.nokey, 0) AS CT"
        )
        .await,
        22105
    );
    exec(
        &mut c,
        "ALTER TABLE dbo.t DISABLE CHANGE_TRACKING; ALTER DATABASE shop SET CHANGE_TRACKING = OFF",
    )
    .await;
    assert!(rows(&mut c, "SELECT * FROM sys.change_tracking_tables")
        .await
        .is_empty());
}

#[tokio::test]
async fn versions_and_net_changes() {
    let s = sim("ct_changes").await;
    let mut c = connect(&s).await;
    ct_db(&mut c).await;
    exec(&mut c, "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20), w int); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = ON)").await;
    exec(
        &mut c,
        "INSERT INTO dbo.t (id, v) VALUES (1, N'a'), (2, N'b'), (3, N'c')",
    )
    .await;
    let v1 = version(&rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await);
    assert_eq!(v1, 1, "one committed transaction, one version");
    // A rolled-back transaction leaves no trace.
    exec(
        &mut c,
        "BEGIN TRAN; UPDATE dbo.t SET v = N'x' WHERE id = 1; ROLLBACK",
    )
    .await;
    assert_eq!(
        version(&rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await),
        v1
    );
    // One transaction: update, delete + re-insert of the same key, a primary key update.
    exec(&mut c, "BEGIN TRAN; UPDATE dbo.t SET v = N'a2' WHERE id = 1; DELETE FROM dbo.t WHERE id = 2; INSERT INTO dbo.t (id, v) VALUES (2, N'b2'); UPDATE dbo.t SET id = 4 WHERE id = 3; COMMIT").await;
    let v2 = version(&rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await);
    assert_eq!(v2, v1 + 1);
    // Relative to v1 the rows existed: U, U (delete + re-insert), D for the old key, I for the new.
    assert_eq!(
        changes(&mut c, v1).await,
        vec![
            (1, "U".into(), v2, Some("a2".into())),
            (2, "U".into(), v2, Some("b2".into())),
            (3, "D".into(), v2, None),
            (4, "I".into(), v2, Some("c".into())),
        ]
    );
    // Relative to 0 every surviving key is an insert; key 3 was inserted and deleted.
    let all = changes(&mut c, 0).await;
    assert_eq!(
        all.iter().map(|x| (x.0, x.1.as_str())).collect::<Vec<_>>(),
        vec![(1, "I"), (2, "I"), (3, "D"), (4, "I")]
    );
    // Columns updated, and the change context.
    exec(
        &mut c,
        "WITH CHANGE_TRACKING_CONTEXT (0x0A0B) UPDATE dbo.t SET w = 5 WHERE id = 1",
    )
    .await;
    let r = c
        .query(
            "SELECT CT.SYS_CHANGE_CONTEXT, CHANGE_TRACKING_IS_COLUMN_IN_MASK(COLUMNPROPERTY(OBJECT_ID('dbo.t'), 'w', 'ColumnId'), CT.SYS_CHANGE_COLUMNS) AS w_changed, \
             CHANGE_TRACKING_IS_COLUMN_IN_MASK(COLUMNPROPERTY(OBJECT_ID('dbo.t'), 'v', 'ColumnId'), CT.SYS_CHANGE_COLUMNS) AS v_changed \
             FROM CHANGETABLE(CHANGES dbo.t, @P1) AS CT",
            &[&v2],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].get::<&[u8], _>("SYS_CHANGE_CONTEXT"),
        Some(&[0x0Au8, 0x0B][..])
    );
    assert_eq!(
        (
            r[0].get::<i32, _>("w_changed"),
            r[0].get::<i32, _>("v_changed")
        ),
        (Some(1), Some(0))
    );
    // CHANGETABLE(VERSION ...): the last version of one key.
    let r = rows(
        &mut c,
        "SELECT CT.SYS_CHANGE_VERSION, CT.id FROM CHANGETABLE(VERSION dbo.t, (id), (2)) AS CT",
    )
    .await;
    assert_eq!(
        (r[0].get::<i64, _>(0), r[0].get::<i32, _>(1)),
        (Some(v2), Some(2))
    );
    // The commit table knows every version.
    let r = rows(
        &mut c,
        "SELECT COUNT(*) FROM sys.dm_tran_commit_table WHERE commit_ts > 0",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(3));
}

#[tokio::test]
async fn versions_follow_commit_order_and_snapshots_are_stable() {
    let s = sim("ct_order").await;
    let mut a = connect(&s).await;
    ct_db(&mut a).await;
    let mut b = connect_with(&s, SA_PASSWORD, Some("shop")).await.unwrap();
    let mut reader = connect_with(&s, SA_PASSWORD, Some("shop")).await.unwrap();
    exec(&mut a, "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20)); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    // A writes first but commits last: its version is the higher one.
    exec(&mut a, "BEGIN TRAN; INSERT INTO dbo.t VALUES (1, N'a')").await;
    exec(&mut b, "INSERT INTO dbo.t VALUES (2, N'b')").await;
    // A snapshot reader started now sees version 1 and keeps seeing it.
    let r = rows(&mut reader, "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRAN; SELECT CHANGE_TRACKING_CURRENT_VERSION()").await;
    assert_eq!(version(&r), 1);
    exec(&mut a, "COMMIT").await;
    let got = changes(&mut b, 0).await;
    assert_eq!(
        got.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
        vec![(2, 1), (1, 2)],
        "versions in commit order"
    );
    assert_eq!(
        version(&rows(&mut reader, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await),
        1,
        "a snapshot sees no later version"
    );
    let r = rows(
        &mut reader,
        "SELECT COUNT(*) FROM CHANGETABLE(CHANGES dbo.t, 0) AS CT",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(1));
    // Cleanup after the snapshot started is not visible to it either.
    exec(&mut b, "EXEC sys.sp_mssqlsim_ct_cleanup @up_to_version = 2").await;
    let r = rows(
        &mut reader,
        "SELECT COUNT(*) FROM CHANGETABLE(CHANGES dbo.t, 0) AS CT",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(1));
    exec(&mut reader, "COMMIT").await;
    assert_eq!(
        rows(
            &mut reader,
            "SELECT COUNT(*) FROM CHANGETABLE(CHANGES dbo.t, 0) AS CT"
        )
        .await[0]
            .get::<i32, _>(0),
        Some(0)
    );
    assert_eq!(
        rows(
            &mut reader,
            "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID('dbo.t'))"
        )
        .await[0]
            .get::<i64, _>(0),
        Some(2)
    );
    assert_eq!(
        version(&rows(&mut reader, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await),
        2,
        "cleanup never moves the current version back"
    );
}

#[tokio::test]
async fn truncate_invalidates_older_baselines() {
    let s = sim("ct_truncate").await;
    let mut c = connect(&s).await;
    ct_db(&mut c).await;
    exec(&mut c, "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20)); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.t VALUES (1, N'a')").await;
    let before = version(&rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await);
    exec(&mut c, "TRUNCATE TABLE dbo.t").await;
    let min_valid = rows(
        &mut c,
        "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID('dbo.t'))",
    )
    .await[0]
        .get::<i64, _>(0)
        .unwrap();
    assert!(
        min_valid > before,
        "a baseline from before the TRUNCATE is no longer valid ({before} vs {min_valid})"
    );
    let now = version(&rows(&mut c, "SELECT CHANGE_TRACKING_CURRENT_VERSION()").await);
    assert!(now >= min_valid, "a fresh baseline is valid");
    exec(&mut c, "INSERT INTO dbo.t VALUES (2, N'b')").await;
    assert_eq!(
        changes(&mut c, now)
            .await
            .iter()
            .map(|x| x.0)
            .collect::<Vec<_>>(),
        vec![2]
    );
}

#[tokio::test]
async fn background_cleanup_honours_the_retention() {
    let (s, backing_db) = sim_with_backing("ct_retention").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE DATABASE shop; ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 10 MINUTES, AUTO_CLEANUP = ON); USE shop").await;
    exec(&mut c, "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(20)); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.t VALUES (1, N'a'); INSERT INTO dbo.t VALUES (2, N'b'); INSERT INTO dbo.t VALUES (3, N'c')").await;
    // Changes within the retention survive the cleanup task (which runs every 200 ms here).
    let backing = testkit::pg().url_for(&mssql_sim::server::pg_name_for(&backing_db, "shop"));
    let pg = testkit::connect(&backing).await;
    // Age the first two commits past the retention, as if 11 minutes had passed.
    pg.batch_execute("UPDATE _sim.ct_tx SET commit_time = commit_time - interval '11 minutes' WHERE version <= 2").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let min_valid = rows(
            &mut c,
            "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID('dbo.t'))",
        )
        .await[0]
            .get::<i64, _>(0);
        if min_valid == Some(2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cleanup did not apply the retention: min valid {min_valid:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        changes(&mut c, 2)
            .await
            .iter()
            .map(|x| x.0)
            .collect::<Vec<_>>(),
        vec![3],
        "the change within the retention remains"
    );
}
