//! Login, errors, transactions, sessions and isolation through tiberius.

use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn login_and_wrong_password() {
    let s = sim("login").await;
    let mut c = connect(&s).await;
    let r = rows(&mut c, "SELECT @@VERSION AS v, DB_NAME() AS d").await;
    let v: &str = r[0].get(0).unwrap();
    assert!(v.starts_with("Microsoft SQL Server 2022"), "{v}");
    assert_eq!(r[0].get::<&str, _>(1), Some("master"));
    match connect_with(&s, "wrong", None).await {
        Err(tiberius::error::Error::Server(e)) => {
            assert_eq!(e.code(), 18456);
            assert!(
                !e.message().contains("wrong"),
                "the password must not be echoed"
            );
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("a wrong password must not log in"),
    }
}

#[tokio::test]
async fn errors_carry_sql_server_numbers() {
    let s = sim("errors").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE dbo.e (id int PRIMARY KEY, name nvarchar(5) NOT NULL, parent int NULL)",
    )
    .await;
    exec(&mut c, "INSERT INTO dbo.e (id, name) VALUES (1, N'a')").await;
    assert_eq!(error_number(&mut c, "SELECT * FROM dbo.missing").await, 208);
    assert_eq!(
        error_number(&mut c, "SELECT nocolumn FROM dbo.e").await,
        207
    );
    assert_eq!(
        error_number(&mut c, "INSERT INTO dbo.e (id, name) VALUES (1, N'b')").await,
        2627
    );
    assert_eq!(
        error_number(&mut c, "INSERT INTO dbo.e (id, name) VALUES (2, NULL)").await,
        515
    );
    assert_eq!(
        error_number(
            &mut c,
            "INSERT INTO dbo.e (id, name) VALUES (3, N'toolong')"
        )
        .await,
        8152
    );
    assert_eq!(error_number(&mut c, "SELECT FROM WHERE").await, 102);
    assert_eq!(error_number(&mut c, "SELECT @undeclared").await, 137);
    assert_eq!(error_number(&mut c, "SELECT 1/0").await, 8134);
    exec(&mut c, "CREATE TABLE dbo.child (id int PRIMARY KEY, e_id int CONSTRAINT fk_e REFERENCES dbo.e (id))").await;
    assert_eq!(
        error_number(&mut c, "INSERT INTO dbo.child VALUES (1, 99)").await,
        547
    );
    // The session survives errors.
    let r = rows(&mut c, "SELECT COUNT(*) FROM dbo.e").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(1));
}

#[tokio::test]
async fn transactions_nest_and_roll_back() {
    let s = sim("txn").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE t (id int PRIMARY KEY)").await;
    // Rows affected are reported per statement, also for the first one of a transaction.
    let res = c
        .execute("BEGIN TRAN; INSERT INTO t VALUES (10), (11); UPDATE t SET id = id + 10 WHERE id >= 10; DELETE FROM t WHERE id = 20; COMMIT", &[])
        .await
        .unwrap();
    // (BEGIN and COMMIT end with a DONE of their own, without a count.)
    let counted: Vec<u64> = res
        .rows_affected()
        .iter()
        .copied()
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(counted, vec![2, 2, 1]);
    exec(&mut c, "DELETE FROM t").await;
    let r = rows(&mut c, "BEGIN TRAN; BEGIN TRAN; SELECT @@TRANCOUNT").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(2));
    exec(&mut c, "INSERT INTO t VALUES (1); COMMIT").await;
    let r = rows(&mut c, "SELECT @@TRANCOUNT").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(1));
    exec(&mut c, "ROLLBACK").await;
    let r = rows(&mut c, "SELECT @@TRANCOUNT, (SELECT COUNT(*) FROM t)").await;
    assert_eq!(
        (r[0].get::<i32, _>(0), r[0].get::<i32, _>(1)),
        (Some(0), Some(0))
    );
    // A failed statement inside a transaction undoes itself only.
    exec(&mut c, "BEGIN TRAN; INSERT INTO t VALUES (1)").await;
    assert_eq!(error_number(&mut c, "INSERT INTO t VALUES (1)").await, 2627);
    exec(&mut c, "INSERT INTO t VALUES (2); COMMIT").await;
    let r = rows(&mut c, "SELECT COUNT(*) FROM t").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(2));
    // Savepoints.
    exec(&mut c, "BEGIN TRAN; INSERT INTO t VALUES (3); SAVE TRAN s1; INSERT INTO t VALUES (4); ROLLBACK TRAN s1; COMMIT").await;
    let r = rows(&mut c, "SELECT COUNT(*) FROM t WHERE id IN (3, 4)").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(1));
    assert_eq!(error_number(&mut c, "COMMIT").await, 3902);
}

#[tokio::test]
async fn parameters_identity_and_variables() {
    let s = sim("params").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE dbo.items (id bigint IDENTITY(100, 5) PRIMARY KEY, name nvarchar(100) NOT NULL, qty int NULL)").await;
    let res = c
        .execute(
            "INSERT INTO dbo.items (name, qty) VALUES (@P1, @P2)",
            &[&"first", &Some(3i32)],
        )
        .await
        .unwrap();
    assert_eq!(res.total(), 1);
    c.execute(
        "INSERT INTO dbo.items (name, qty) VALUES (@P1, @P2)",
        &[&"second", &Option::<i32>::None],
    )
    .await
    .unwrap();
    let r = c
        .query(
            "SELECT id, name, qty FROM dbo.items WHERE id > @P1 ORDER BY id",
            &[&0i64],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].get::<i64, _>(0), Some(100));
    assert_eq!(r[1].get::<i64, _>(0), Some(105));
    assert_eq!(r[1].get::<i32, _>(2), None);
    let r = rows(&mut c, "SELECT IDENT_CURRENT('dbo.items')").await;
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(0),
        Some(rust_decimal::Decimal::from(105))
    );
    let r = rows(
        &mut c,
        "INSERT INTO dbo.items (name) VALUES (N'third'); SELECT SCOPE_IDENTITY()",
    )
    .await;
    let _ = r;
    let r = rows(&mut c, "SELECT SCOPE_IDENTITY()").await;
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(0),
        Some(rust_decimal::Decimal::from(110))
    );
    let r = rows(
        &mut c,
        "DECLARE @n int = 2; SET @n += 3; SELECT @n * 2 AS x, 'a' + N'b' AS s",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(10));
    assert_eq!(r[0].get::<&str, _>(1), Some("ab"));
}

#[tokio::test]
async fn databases_and_catalog() {
    let s = sim("dbs").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE DATABASE Shop").await;
    exec(&mut c, "USE shop").await;
    let r = rows(&mut c, "SELECT DB_NAME()").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("Shop"));
    exec(&mut c, "CREATE TABLE [dbo].[Order Lines] ([Line Id] int NOT NULL, [x]]y] nvarchar(10), [a\"b] decimal(38,38), CONSTRAINT PK_Lines PRIMARY KEY ([Line Id]))").await;
    let r = rows(
        &mut c,
        "SELECT t.name, s.name FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id",
    )
    .await;
    assert_eq!(
        (r[0].get::<&str, _>(0), r[0].get::<&str, _>(1)),
        (Some("Order Lines"), Some("dbo"))
    );
    let r = rows(&mut c, "SELECT c.name, ty.name, c.max_length, c.precision, c.scale, c.is_nullable FROM sys.columns c JOIN sys.types ty ON ty.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID('[dbo].[Order Lines]') ORDER BY c.column_id").await;
    let got: Vec<(String, String, i16, u8, u8, bool)> = r
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().to_string(),
                r.get::<&str, _>(1).unwrap().to_string(),
                r.get(2).unwrap(),
                r.get(3).unwrap(),
                r.get(4).unwrap(),
                r.get(5).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("Line Id".into(), "int".into(), 4, 10, 0, false),
            ("x]y".into(), "nvarchar".into(), 20, 0, 0, true),
            ("a\"b".into(), "decimal".into(), 17, 38, 38, true),
        ]
    );
    let r = rows(&mut c, "SELECT kc.name, ic.column_id FROM sys.key_constraints kc JOIN sys.index_columns ic ON ic.object_id = kc.parent_object_id AND ic.index_id = kc.unique_index_id WHERE kc.type = 'PK'").await;
    assert_eq!(
        (r[0].get::<&str, _>(0), r[0].get::<i32, _>(1)),
        (Some("PK_Lines"), Some(1))
    );
    let r = rows(&mut c, "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'Order Lines' ORDER BY ORDINAL_POSITION").await;
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].get::<&str, _>("COLUMN_NAME"), Some("x]y"));
    assert_eq!(r[1].get::<i32, _>(2), Some(10));
    // Names are case-insensitive, as with SQL Server's default collation.
    exec(
        &mut c,
        "INSERT INTO [ORDER LINES] ([line id], [X]]Y]) VALUES (1, N'v')",
    )
    .await;
    let r = rows(
        &mut c,
        "SELECT [x]]y] FROM [order lines] WHERE [x]]y] = 'V'",
    )
    .await;
    assert_eq!(r.len(), 1, "comparisons are case-insensitive");
    let r = rows(
        &mut c,
        "SELECT name FROM sys.databases ORDER BY database_id",
    )
    .await;
    let names: Vec<&str> = r.iter().map(|r| r.get::<&str, _>(0).unwrap()).collect();
    assert_eq!(names, vec!["master", "Shop"]);
}

#[tokio::test]
async fn several_sessions_and_snapshot_isolation() {
    let s = sim("iso").await;
    let mut a = connect(&s).await;
    let mut b = connect(&s).await;
    exec(&mut a, "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO acct VALUES (1, 100)").await;
    // SNAPSHOT needs the database option, as on SQL Server.
    assert_eq!(
        error_number(
            &mut b,
            "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRAN; SELECT bal FROM acct"
        )
        .await,
        3952
    );
    exec(&mut b, "IF @@TRANCOUNT > 0 ROLLBACK").await;
    exec(
        &mut a,
        "ALTER DATABASE master SET ALLOW_SNAPSHOT_ISOLATION ON",
    )
    .await;
    let r = rows(
        &mut b,
        "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRAN; SELECT bal FROM acct",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(100));
    exec(&mut a, "BEGIN TRAN; UPDATE acct SET bal = 50 WHERE id = 1").await;
    // The writer has not committed: the snapshot reader sees its start-of-transaction view.
    let r = rows(&mut b, "SELECT bal FROM acct").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(100));
    exec(&mut a, "COMMIT").await;
    let r = rows(&mut b, "SELECT bal FROM acct").await;
    assert_eq!(
        r[0].get::<i32, _>(0),
        Some(100),
        "still the snapshot after the writer commits"
    );
    exec(&mut b, "COMMIT").await;
    let r = rows(
        &mut b,
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SELECT bal FROM acct",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(50));
}

#[tokio::test]
async fn a_client_dropping_mid_result_does_not_hurt_the_server() {
    let s = sim("drop").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE big (id int PRIMARY KEY, pad nvarchar(200))",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO big SELECT value, REPLICATE(N'x', 200) FROM GENERATE_SERIES(1, 50000)",
    )
    .await;
    let mut stream = c.simple_query("SELECT * FROM big").await.unwrap();
    // Read a little, then drop the connection with most of the result unsent.
    let _ = futures_util::TryStreamExt::try_next(&mut stream)
        .await
        .unwrap();
    drop(stream);
    drop(c);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c2 = connect(&s).await;
        let r = rows(&mut c2, "SELECT COUNT(*) FROM big").await;
        if r[0].get::<i32, _>(0) == Some(50000) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not recover"
        );
    }
}

#[tokio::test]
async fn alter_table_keeps_the_catalog_in_step() {
    let s = sim("alter").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE dbo.a (id int PRIMARY KEY, old_col nvarchar(10))",
    )
    .await;
    exec(&mut c, "INSERT INTO dbo.a (id, old_col) VALUES (1, N'x')").await;
    exec(&mut c, "ALTER TABLE dbo.a ADD [Added At] datetime2(2) NULL, flag bit NOT NULL CONSTRAINT DF_a_flag DEFAULT 1").await;
    // A nullable column with a default leaves existing rows NULL (no WITH VALUES); new rows
    // get the default; a NOT NULL one fills them.
    exec(
        &mut c,
        "CREATE TABLE dbo.b (id int PRIMARY KEY); INSERT INTO dbo.b VALUES (1)",
    )
    .await;
    exec(&mut c, "ALTER TABLE dbo.b ADD tier int NULL CONSTRAINT DF_b_tier DEFAULT 7, flag bit NOT NULL CONSTRAINT DF_b_flag DEFAULT 1").await;
    exec(&mut c, "INSERT INTO dbo.b (id) VALUES (2)").await;
    let r = rows(&mut c, "SELECT id, tier, flag FROM dbo.b ORDER BY id").await;
    let got: Vec<(i32, Option<i32>, Option<bool>)> = r
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![(1, None, Some(true)), (2, Some(7), Some(true))]);
    exec(&mut c, "ALTER TABLE dbo.a DROP COLUMN old_col").await;
    exec(
        &mut c,
        "ALTER TABLE dbo.a ADD CONSTRAINT UQ_a_added UNIQUE ([Added At])",
    )
    .await;
    let r = rows(&mut c, "SELECT c.name, ty.name, c.scale FROM sys.columns c JOIN sys.types ty ON ty.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID('dbo.a') ORDER BY c.column_id").await;
    let got: Vec<(String, String, u8)> = r
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().into(),
                r.get::<&str, _>(1).unwrap().into(),
                r.get(2).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("id".into(), "int".into(), 0),
            ("Added At".into(), "datetime2".into(), 2),
            ("flag".into(), "bit".into(), 0)
        ]
    );
    let r = rows(
        &mut c,
        "SELECT name FROM sys.default_constraints WHERE parent_object_id = OBJECT_ID('dbo.a')",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("DF_a_flag"));
    let r = rows(&mut c, "SELECT name, index_id, is_unique_constraint FROM sys.indexes WHERE object_id = OBJECT_ID('dbo.a') ORDER BY index_id").await;
    assert_eq!(r.len(), 2);
    assert_eq!(
        (
            r[1].get::<&str, _>(0),
            r[1].get::<i32, _>(1),
            r[1].get::<bool, _>(2)
        ),
        (Some("UQ_a_added"), Some(2), Some(true))
    );
    // The existing row got the default; the new temporal column is normalised to its scale.
    exec(
        &mut c,
        "UPDATE dbo.a SET [Added At] = '2024-05-06 07:08:09.125' WHERE id = 1",
    )
    .await;
    let r = rows(&mut c, "SELECT flag, [Added At] FROM dbo.a").await;
    assert_eq!(r[0].get::<bool, _>(0), Some(true));
    assert_eq!(
        r[0].get::<chrono::NaiveDateTime, _>(1)
            .map(|d| d.to_string()),
        Some("2024-05-06 07:08:09.130".into())
    );
    assert_eq!(
        error_number(&mut c, "ALTER TABLE dbo.a ADD bad frobnicate").await,
        2715
    );
}

#[tokio::test]
async fn update_and_delete_with_joins() {
    let s = sim("dmljoin").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE o (id int PRIMARY KEY, status nvarchar(10), total money); CREATE TABLE l (oid int, qty int, price money)").await;
    exec(&mut c, "INSERT INTO o VALUES (1, N'new', 0), (2, N'new', 0), (3, N'new', 0); INSERT INTO l VALUES (1, 2, 5.00), (2, 1, 7.50), (9, 1, 1)").await;
    exec(&mut c, "UPDATE ord SET ord.total = l.qty * l.price, status = N'priced' FROM dbo.o AS ord INNER JOIN l ON l.oid = ord.id WHERE l.qty > 0").await;
    let r = rows(
        &mut c,
        "SELECT id, status, CAST(total AS decimal(19,4)) FROM o ORDER BY id",
    )
    .await;
    let got: Vec<(i32, String, String)> = r
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap(),
                r.get::<&str, _>(1).unwrap().to_string(),
                r.get::<rust_decimal::Decimal, _>(2).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "priced".into(), "10.0000".into()),
            (2, "priced".into(), "7.5000".into()),
            (3, "new".into(), "0.0000".into())
        ]
    );
    exec(
        &mut c,
        "DELETE o FROM o JOIN l ON l.oid = o.id WHERE l.price > 6",
    )
    .await;
    let r = rows(&mut c, "SELECT id FROM o ORDER BY id").await;
    assert_eq!(
        r.iter()
            .map(|r| r.get::<i32, _>(0).unwrap())
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(
        error_number(
            &mut c,
            "UPDATE o SET status = N'x' FROM o LEFT JOIN l ON l.oid = o.id"
        )
        .await,
        40000
    );
}

/// Waits until some backend of the backing cluster waits on a lock (a reader blocked by a writer).
async fn wait_for_lock_wait(backing_admin: &tokio_postgres::Client) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = backing_admin
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'mssql-sim'", &[])
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session ever waited on a lock"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn read_committed_waits_for_writers_unless_rcsi_is_on() {
    let s = sim("rc").await;
    let mut writer = connect(&s).await;
    let mut reader = connect(&s).await;
    let admin = testkit::connect(&testkit::pg().admin_url).await;
    exec(&mut writer, "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL); INSERT INTO acct VALUES (1, 100), (2, 200)").await;
    exec(
        &mut writer,
        "BEGIN TRAN; UPDATE acct SET bal = 50 WHERE id = 1",
    )
    .await;
    // A row the writer did not touch is read at once.
    assert_eq!(
        rows(&mut reader, "SELECT bal FROM acct WHERE id = 2").await[0].get::<i32, _>(0),
        Some(200)
    );
    // The changed row: the READ COMMITTED reader waits for the writer, then sees its commit.
    let read = tokio::spawn(async move {
        let r = rows(&mut reader, "SELECT bal FROM acct WHERE id = 1").await;
        (r[0].get::<i32, _>(0), reader)
    });
    wait_for_lock_wait(&admin).await;
    assert!(!read.is_finished(), "the reader must still be blocked");
    exec(&mut writer, "COMMIT").await;
    let (bal, mut reader) = read.await.unwrap();
    assert_eq!(bal, Some(50));
    // NOLOCK reads the committed version without waiting (PostgreSQL has no dirty reads).
    exec(
        &mut writer,
        "BEGIN TRAN; UPDATE acct SET bal = 10 WHERE id = 1",
    )
    .await;
    assert_eq!(
        rows(
            &mut reader,
            "SELECT bal FROM acct WITH (NOLOCK) WHERE id = 1"
        )
        .await[0]
            .get::<i32, _>(0),
        Some(50)
    );
    // With READ_COMMITTED_SNAPSHOT ON, READ COMMITTED reads the last committed version.
    exec(
        &mut reader,
        "ALTER DATABASE master SET READ_COMMITTED_SNAPSHOT ON",
    )
    .await;
    assert_eq!(
        rows(&mut reader, "SELECT bal FROM acct WHERE id = 1").await[0].get::<i32, _>(0),
        Some(50)
    );
    exec(&mut writer, "ROLLBACK").await;
}

#[tokio::test]
async fn invalid_column_errors_name_the_column() {
    let s = sim("colname").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE t (id int PRIMARY KEY)").await;
    for q in ["SELECT nope FROM t", "SELECT x.nope FROM t AS x"] {
        let (code, message) = server_error(&mut c, q).await;
        assert_eq!(code, 207);
        assert!(message.contains("'nope'"), "{q}: {message}");
    }
}
