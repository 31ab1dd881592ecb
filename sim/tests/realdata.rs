//! The SQL Server scripts people actually have (testdata/: Northwind, Chinook), run as sqlcmd
//! runs them, and every statement of them cut at random points: the simulator answers each batch
//! with a result or an error and the session stays usable.

use crate::common::*;

fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

async fn count(c: &mut Tds, table: &str) -> i32 {
    rows(c, &format!("SELECT COUNT(*) FROM {table}")).await[0]
        .get::<i32, _>(0)
        .unwrap()
}

async fn load(s: &mssql_sim::server::SimServer, database: Option<&str>, file: &str) {
    let report = mssql_sim::script::run(s.addr, SA_PASSWORD, database, &[script(file)])
        .await
        .unwrap();
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("line {}: {}", f.line, f.error))
        .collect();
    assert!(failures.is_empty(), "{file}: {failures:#?}");
    assert!(report.batches > 30, "{file}: {} batches", report.batches);
}

#[tokio::test]
async fn northwind_loads_with_every_batch_and_reads_back_exactly() {
    let s = sim("northwind").await;
    load(&s, Some("Northwind"), "northwind/instnwnd.sql").await;
    let mut c = connect(&s).await;
    exec(&mut c, "USE Northwind").await;
    for (t, n) in [
        ("Orders", 830),
        ("[Order Details]", 2155),
        ("Customers", 91),
        ("Products", 77),
        ("Employees", 9),
        ("Categories", 8),
    ] {
        assert_eq!(count(&mut c, t).await, n, "{t}");
    }
    // A date written under SET DATEFORMAT mdy ('7/4/1996'), a money value, an image's bytes.
    let r = rows(
        &mut c,
        "SELECT OrderDate, CAST(Freight AS decimal(19,4)) FROM Orders WHERE OrderID = 10248",
    )
    .await;
    assert_eq!(
        r[0].get::<chrono::NaiveDateTime, _>(0),
        chrono::NaiveDate::from_ymd_opt(1996, 7, 4).and_then(|d| d.and_hms_opt(0, 0, 0))
    );
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(1),
        Some(rust_decimal::Decimal::new(3238, 2))
    );
    let r = rows(
        &mut c,
        "SELECT DATALENGTH(Picture), SUBSTRING(Picture, 1, 4) FROM Categories WHERE CategoryID = 1",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(10746));
    assert_eq!(r[0].get::<&[u8], _>(1), Some(&[0x15, 0x1C, 0x2F, 0x00][..]));
    // Views are queryable; procedures are in the catalog with their text and refuse to run.
    assert_eq!(count(&mut c, "[Alphabetical list of products]").await, 69);
    let r = rows(&mut c, "SELECT COUNT(*) FROM sys.procedures").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(7));
    let r = rows(&mut c, "SELECT m.definition FROM sys.sql_modules m JOIN sys.objects o ON o.object_id = m.object_id WHERE o.name = 'CustOrderHist'").await;
    assert!(r[0]
        .get::<&str, _>(0)
        .unwrap()
        .starts_with("CREATE PROCEDURE CustOrderHist @CustomerID nchar(5)"));
    assert_eq!(
        error_number(&mut c, "EXEC CustOrderHist @CustomerID = N'ALFKI'").await,
        40000
    );
    // The script runs again over its own database (its guards drop what it made).
    load(&s, Some("Northwind"), "northwind/instnwnd.sql").await;
}

#[tokio::test]
async fn chinook_loads_with_every_batch() {
    let s = sim("chinook").await;
    load(&s, None, "chinook/Chinook_SqlServer.sql").await;
    let mut c = connect(&s).await;
    exec(&mut c, "USE Chinook").await;
    for (t, n) in [
        ("Track", 3503),
        ("PlaylistTrack", 8715),
        ("InvoiceLine", 2240),
        ("Artist", 275),
    ] {
        assert_eq!(count(&mut c, t).await, n, "{t}");
    }
    let r = rows(&mut c, "SELECT Name FROM Artist WHERE ArtistId = 1").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("AC/DC"));
    // Its first batch drops the database with ALTER DATABASE ... SET OFFLINE WITH ROLLBACK
    // IMMEDIATE when it exists: a second run takes that path.
    drop(c);
    load(&s, None, "chinook/Chinook_SqlServer.sql").await;
}

#[tokio::test]
async fn pubs_loads_with_every_batch() {
    let s = sim("pubs").await;
    load(&s, None, "pubs/instpubs.sql").await;
    let mut c = connect(&s).await;
    exec(&mut c, "USE pubs").await;
    for (t, n) in [
        ("authors", 23),
        ("titles", 18),
        ("publishers", 8),
        ("employee", 43),
        ("jobs", 14),
        ("sales", 21),
        ("stores", 6),
        ("titleauthor", 25),
        ("roysched", 86),
        ("discounts", 3),
        ("pub_info", 8),
    ] {
        assert_eq!(count(&mut c, t).await, n, "{t}");
    }
    // contract bit written as 3 reads 1, as in SQL Server; an alias-typed key.
    let r = rows(&mut c, "SELECT contract, TYPE_NAME(c.user_type_id) FROM authors a, sys.columns c WHERE a.au_id = '472-27-2349' AND c.object_id = OBJECT_ID('authors') AND c.name = 'au_id'").await;
    assert_eq!(r[0].get::<bool, _>(0), Some(true));
    assert_eq!(r[0].get::<&str, _>(1), Some("id"));
    // The trigger with a procedural body is kept, disabled, with its text.
    let r = rows(&mut c, "SELECT t.is_disabled, m.definition FROM sys.triggers t JOIN sys.sql_modules m ON m.object_id = t.object_id WHERE t.name = 'employee_insupd'").await;
    assert_eq!(r[0].get::<bool, _>(0), Some(true));
    assert!(r[0]
        .get::<&str, _>(1)
        .unwrap()
        .starts_with("CREATE TRIGGER employee_insupd"));
    drop(c);
    // The script drops and creates its database again.
    load(&s, None, "pubs/instpubs.sql").await;
}

/// Every statement of the scripts cut at a random point and sent as a batch: each gets a result
/// or an error reply, never a dropped connection or a hang, and the session answers afterwards.
#[tokio::test]
async fn statements_cut_anywhere_get_an_answer_and_the_session_goes_on() {
    let s = sim("cut_batches").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE DATABASE cut; USE cut").await;
    let mut rng = fastrand::Rng::with_seed(15);
    let mut sent = 0;
    for file in [
        "northwind/instnwnd.sql",
        "chinook/Chinook_SqlServer.sql",
        "pubs/instpubs.sql",
    ] {
        let text = mssql_sim::script::decode(&std::fs::read(script(file)).unwrap()).unwrap();
        let batches = mssql_sim::script::split_batches(&text);
        for b in batches.iter().step_by(3).take(80) {
            let chars: Vec<char> = b.text.chars().take(3000).collect();
            let cut: String = chars[..rng.usize(1..=chars.len())].iter().collect();
            let answered = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                match c.simple_query(cut.as_str()).await {
                    Ok(stream) => stream.into_results().await.map(|_| ()),
                    Err(e) => Err(e),
                }
            })
            .await;
            match answered {
                Err(_) => panic!("no answer within 30 s to {cut:?}"),
                Ok(Err(tiberius::error::Error::Server(_))) | Ok(Ok(())) => {}
                Ok(Err(other)) => panic!("the session broke on {cut:?}: {other}"),
            }
            // A cut batch may leave a transaction open (BEGIN TRAN without COMMIT).
            let _ = c.simple_query("IF @@TRANCOUNT > 0 ROLLBACK").await;
            let r = rows(&mut c, "SELECT 1").await;
            assert_eq!(r[0].get::<i32, _>(0), Some(1), "after {cut:?}");
            sent += 1;
        }
    }
    assert!(sent > 100, "{sent} cut batches");
}

/// What pubs needs first: alias types (sp_addtype and CREATE TYPE ... FROM) in columns and in
/// sys.types, `PRIMARY KEY CLUSTERED` on a column, CHECKs with LIKE classes, CHECKPOINT.
#[tokio::test]
async fn alias_types_clustered_keys_and_like_classes() {
    let s = sim("alias_types").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE DATABASE p; USE p").await;
    exec(&mut c, "EXEC sp_addtype id, 'varchar(11)', 'NOT NULL'").await;
    exec(
        &mut c,
        "CREATE TYPE dbo.note FROM nvarchar(40) NULL; CHECKPOINT",
    )
    .await;
    exec(
        &mut c,
        "CREATE TABLE authors (au_id id CHECK (au_id LIKE '[0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][0-9][0-9]') \
           CONSTRAINT UPKCL_auidind PRIMARY KEY CLUSTERED, remark note, zip char(5) NULL CHECK (zip LIKE '[0-9][0-9][0-9][0-9][0-9]'))",
    )
    .await;
    exec(
        &mut c,
        "INSERT authors VALUES ('409-56-7008', NULL, '94705')",
    )
    .await;
    assert_eq!(
        error_number(
            &mut c,
            "INSERT authors VALUES ('40-956-7008', NULL, '94705')"
        )
        .await,
        547
    );
    assert_eq!(
        error_number(
            &mut c,
            "INSERT authors VALUES ('409-56-7009', NULL, '9470X')"
        )
        .await,
        547
    );
    let r = rows(&mut c, "SELECT ty.name, ty.is_user_defined, TYPE_NAME(ty.system_type_id), c.max_length, c.is_nullable \
                          FROM sys.columns c JOIN sys.types ty ON ty.user_type_id = c.user_type_id \
                          WHERE c.object_id = OBJECT_ID('authors') ORDER BY c.column_id").await;
    let got: Vec<(String, bool, String, i16, bool)> = r
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().into(),
                r.get::<bool, _>(1).unwrap(),
                r.get::<&str, _>(2).unwrap().into(),
                r.get::<i16, _>(3).unwrap(),
                r.get::<bool, _>(4).unwrap(),
            )
        })
        .collect();
    assert_eq!(got[0], ("id".into(), true, "varchar".into(), 11, false));
    assert_eq!(got[1], ("note".into(), true, "nvarchar".into(), 80, true));
    assert_eq!(got[2].0, "char");
    // INSERT without a column list fills neither the identity nor a computed column.
    exec(&mut c, "CREATE TABLE jobs (job_id smallint IDENTITY(1,1) PRIMARY KEY, job_desc varchar(50) NOT NULL, \
                  min_lvl tinyint NOT NULL, max_lvl tinyint NOT NULL, span AS max_lvl - min_lvl)").await;
    exec(
        &mut c,
        "insert jobs values ('New Hire - Job not specified', 10, 10)",
    )
    .await;
    exec(
        &mut c,
        "insert jobs values ('Chief Executive Officer', 200, 250)",
    )
    .await;
    let r = rows(&mut c, "SELECT job_id, span FROM jobs ORDER BY job_id").await;
    let got: Vec<(i16, u8)> = r
        .iter()
        .map(|r| (r.get::<i16, _>(0).unwrap(), r.get::<u8, _>(1).unwrap()))
        .collect();
    assert_eq!(got, vec![(1, 0), (2, 50)]);
}

/// Fidelity items the scripts and catalog readers meet: COUNT(DISTINCT), rowversion NOT NULL,
/// default definitions as SQL Server prints them, a bare procedure name (2812), CDC in
/// sys.tables, views with their text, extended properties.
#[tokio::test]
async fn catalog_fidelity_for_real_scripts() {
    let s = sim("fidelity").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE DATABASE f; USE f; EXEC sys.sp_cdc_enable_db",
    )
    .await;
    exec(&mut c, "CREATE TABLE g (id int PRIMARY KEY, k int, v rowversion, d nvarchar(10) DEFAULT N'x', t datetime DEFAULT getdate()); \
                  INSERT INTO g (id, k) VALUES (1, 1), (2, 1), (3, 2)").await;
    let r = rows(&mut c, "SELECT COUNT(DISTINCT k), COUNT(k) FROM g").await;
    assert_eq!(
        (r[0].get::<i32, _>(0), r[0].get::<i32, _>(1)),
        (Some(2), Some(3))
    );
    let r = rows(
        &mut c,
        "SELECT is_nullable FROM sys.columns WHERE object_id = OBJECT_ID('g') AND name = 'v'",
    )
    .await;
    assert_eq!(r[0].get::<bool, _>(0), Some(false));
    let r = rows(&mut c, "SELECT COLUMN_DEFAULT FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'g' AND COLUMN_DEFAULT IS NOT NULL ORDER BY ORDINAL_POSITION").await;
    let defaults: Vec<&str> = r.iter().map(|r| r.get::<&str, _>(0).unwrap()).collect();
    assert_eq!(defaults, ["(N'x')", "(getdate())"]);
    assert_eq!(error_number(&mut c, "nosuchproc 1, 2").await, 2812);
    exec(&mut c, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'g', @role_name = NULL").await;
    let r = rows(
        &mut c,
        "SELECT is_tracked_by_cdc FROM sys.tables WHERE name = 'g'",
    )
    .await;
    assert_eq!(r[0].get::<bool, _>(0), Some(true));
    exec(
        &mut c,
        "CREATE VIEW [g view] AS SELECT id, k FROM g WHERE k = 1",
    )
    .await;
    let r = rows(&mut c, "SELECT v.name, m.definition, iv.VIEW_DEFINITION FROM sys.views v JOIN sys.sql_modules m ON m.object_id = v.object_id \
                          JOIN INFORMATION_SCHEMA.VIEWS iv ON iv.TABLE_NAME = v.name").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("g view"));
    assert_eq!(
        r[0].get::<&str, _>(1),
        Some("CREATE VIEW [g view] AS SELECT id, k FROM g WHERE k = 1")
    );
    assert_eq!(r[0].get::<&str, _>(2), r[0].get::<&str, _>(1));
    exec(&mut c, "EXEC sp_addextendedproperty @name = N'MS_Description', @value = N'The k', @level0type = N'SCHEMA', @level0name = N'dbo', \
                  @level1type = N'TABLE', @level1name = N'g', @level2type = N'COLUMN', @level2name = N'k'").await;
    let r = rows(&mut c, "SELECT minor_id, CAST(value AS nvarchar(100)) FROM sys.extended_properties WHERE major_id = OBJECT_ID('g') AND name = N'MS_Description'").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(2));
    assert_eq!(r[0].get::<&str, _>(1), Some("The k"));
    // Microsoft's initial-sync pattern: CROSS APPLY CHANGETABLE(VERSION ...).
    exec(
        &mut c,
        "ALTER DATABASE f SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)",
    )
    .await;
    exec(&mut c, "ALTER TABLE g ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "UPDATE g SET k = 5 WHERE id = 2").await;
    let r = rows(&mut c, "SELECT t.id, c.SYS_CHANGE_VERSION FROM g AS t CROSS APPLY CHANGETABLE(VERSION g, (id), (t.id)) AS c ORDER BY t.id").await;
    let got: Vec<(i32, Option<i64>)> = r.iter().map(|r| (r.get(0).unwrap(), r.get(1))).collect();
    assert_eq!(got.len(), 3);
    assert!(
        got[0].1.is_none() && got[1].1.is_some() && got[2].1.is_none(),
        "{got:?}"
    );
    // Sequences, NEXT VALUE FOR in a query and in a default, sys.sequences.
    exec(
        &mut c,
        "CREATE SEQUENCE dbo.seq_a AS int START WITH 100 INCREMENT BY 5",
    )
    .await;
    let r = rows(&mut c, "SELECT NEXT VALUE FOR dbo.seq_a").await;
    assert_eq!(r[0].get::<i64, _>(0), Some(100));
    exec(&mut c, "CREATE TABLE sq (id int NOT NULL PRIMARY KEY DEFAULT (NEXT VALUE FOR dbo.seq_a), v int); INSERT INTO sq (v) VALUES (1), (2)").await;
    let r = rows(&mut c, "SELECT MAX(id) FROM sq").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(110));
    let r = rows(
        &mut c,
        "SELECT name, CAST(current_value AS bigint), CAST(increment AS bigint) FROM sys.sequences",
    )
    .await;
    assert_eq!(
        (
            r.len(),
            r[0].get::<&str, _>(0),
            r[0].get::<i64, _>(1),
            r[0].get::<i64, _>(2)
        ),
        (1, Some("seq_a"), Some(110), Some(5))
    );
    let r = rows(&mut c, "SELECT COLUMN_DEFAULT FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'sq' AND COLUMN_NAME = 'id'").await;
    assert!(r[0]
        .get::<&str, _>(0)
        .unwrap()
        .contains("NEXT VALUE FOR [dbo].[seq_a]"));
}
