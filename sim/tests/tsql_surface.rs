//! The T-SQL the simulator claims to run, statement form by statement form, through tiberius.

use crate::common::*;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn queries_and_batches() {
    let s = sim("surface").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE n (id int PRIMARY KEY, grp int NOT NULL, v nvarchar(20))",
    )
    .await;
    exec(&mut c, "INSERT INTO n SELECT value, value % 3, N'v' + CAST(value AS nvarchar(10)) FROM GENERATE_SERIES(1, 20)").await;
    // Several result sets in one batch, each with its own rows.
    let sets = c
        .simple_query("SELECT COUNT(*) FROM n; SELECT id FROM n WHERE id <= 2 ORDER BY id")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0][0].get::<i32, _>(0), Some(20));
    assert_eq!(sets[1].len(), 2);
    // OFFSET/FETCH, subqueries, aggregates with GROUP BY/HAVING, ISNULL/COALESCE/LEN.
    let r = rows(
        &mut c,
        "SELECT id FROM n ORDER BY id OFFSET 5 ROWS FETCH NEXT 3 ROWS ONLY",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r.get::<i32, _>(0).unwrap())
            .collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    let r = rows(&mut c, "SELECT COUNT(*) FROM n WHERE grp = (SELECT MAX(grp) FROM n) AND id IN (SELECT id FROM n WHERE id > 10)").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(4), "ids 11, 14, 17 and 20");
    let r = rows(
        &mut c,
        "SELECT grp, COUNT(*) AS c FROM n GROUP BY grp HAVING COUNT(*) > 6 ORDER BY grp",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r.get::<i32, _>(0).unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    let r = rows(&mut c, "SELECT ISNULL(NULL, 5), COALESCE(NULL, NULL, 'x'), LEN(N'ab  '), DATALENGTH(N'ab'), UPPER('q'), SUBSTRING('abcdef', 2, 3), CHARINDEX('C', 'abcabc'), REPLACE('aXa', 'X', 'y')").await;
    assert_eq!(r[0].get::<i32, _>(0), Some(5));
    assert_eq!(r[0].get::<&str, _>(1), Some("x"));
    assert_eq!(
        r[0].get::<i32, _>(2),
        Some(2),
        "LEN ignores trailing spaces"
    );
    assert_eq!(
        r[0].get::<i32, _>(3),
        Some(4),
        "DATALENGTH counts UTF-16 bytes"
    );
    assert_eq!(r[0].get::<&str, _>(4), Some("Q"));
    assert_eq!(r[0].get::<&str, _>(5), Some("bcd"));
    assert_eq!(
        r[0].get::<i32, _>(6),
        Some(3),
        "CHARINDEX follows the case-insensitive collation"
    );
    assert_eq!(r[0].get::<&str, _>(7), Some("aya"));
    // @@ROWCOUNT after DML, integer division, string + NULL.
    let r = rows(
        &mut c,
        "UPDATE n SET v = NULL WHERE grp = 0; SELECT @@ROWCOUNT, 7 / 2, 'a' + NULL",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(6));
    assert_eq!(r[0].get::<i32, _>(1), Some(3));
    assert_eq!(r[0].get::<&str, _>(2), None);
    // IF / ELSE and BEGIN ... END.
    let r = rows(
        &mut c,
        "IF (SELECT COUNT(*) FROM n) > 100 SELECT 'big' ELSE BEGIN SELECT 'small' END",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("small"));
    // TRUNCATE.
    exec(&mut c, "TRUNCATE TABLE n").await;
    assert_eq!(
        rows(&mut c, "SELECT COUNT(*) FROM n").await[0].get::<i32, _>(0),
        Some(0)
    );
}

#[tokio::test]
async fn indexes_alter_column_and_functions() {
    let s = sim("surface2").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE p (id int PRIMARY KEY, email nvarchar(100) NOT NULL, code varchar(5) NULL)",
    )
    .await;
    exec(
        &mut c,
        "CREATE UNIQUE NONCLUSTERED INDEX IX_p_email ON dbo.p (email DESC) INCLUDE (code)",
    )
    .await;
    exec(&mut c, "INSERT INTO p VALUES (1, N'A@x', 'a')").await;
    // The unique index follows the case-insensitive collation: A@x and a@X collide.
    assert_eq!(
        error_number(&mut c, "INSERT INTO p VALUES (2, N'a@X', 'b')").await,
        2601
    );
    let r = rows(&mut c, "SELECT i.name, i.index_id, i.is_unique, ic.is_descending_key, ic2.is_included_column FROM sys.indexes i \
                          JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.key_ordinal = 1 \
                          JOIN sys.index_columns ic2 ON ic2.object_id = i.object_id AND ic2.index_id = i.index_id AND ic2.index_column_id = 2 \
                          WHERE i.object_id = OBJECT_ID('p') AND i.index_id > 1").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("IX_p_email"));
    assert_eq!(r[0].get::<i32, _>(1), Some(2));
    assert_eq!(
        (
            r[0].get::<bool, _>(2),
            r[0].get::<bool, _>(3),
            r[0].get::<bool, _>(4)
        ),
        (Some(true), Some(true), Some(true))
    );
    exec(
        &mut c,
        "ALTER TABLE p ALTER COLUMN code varchar(20) NOT NULL",
    )
    .await;
    let r = rows(&mut c, "SELECT max_length, is_nullable FROM sys.columns WHERE object_id = OBJECT_ID('p') AND name = 'code'").await;
    assert_eq!(
        (r[0].get::<i16, _>(0), r[0].get::<bool, _>(1)),
        (Some(20), Some(false))
    );
    // HASHBYTES hashes nvarchar as UTF-16LE and varchar as code page 1252, like SQL Server.
    let r = rows(
        &mut c,
        "SELECT HASHBYTES('SHA2_256', N'abc€'), HASHBYTES('SHA2_256', CAST('abc€' AS varchar(10)))",
    )
    .await;
    let utf16: Vec<u8> = "abc€"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert_eq!(
        r[0].get::<&[u8], _>(0),
        Some(Sha256::digest(&utf16).as_slice())
    );
    assert_eq!(
        r[0].get::<&[u8], _>(1),
        Some(Sha256::digest([0x61, 0x62, 0x63, 0x80]).as_slice())
    );
    // Date functions and their T-SQL types.
    let r = rows(&mut c, "SELECT GETDATE(), SYSDATETIME(), NEWID(), DATEADD(day, 1, CAST('2024-02-28' AS date)), DATEDIFF(month, '2024-01-31', '2024-02-01'), YEAR('2024-05-06'), DATEPART(hour, '2024-05-06 07:08:09')").await;
    let now: chrono::NaiveDateTime = r[0].get(0).unwrap();
    let sys: chrono::NaiveDateTime = r[0].get(1).unwrap();
    assert!((sys - now).num_seconds().abs() < 60);
    assert!(r[0].get::<uuid::Uuid, _>(2).is_some());
    assert_eq!(
        r[0].get::<chrono::NaiveDate, _>(3),
        chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
    );
    assert_eq!(
        r[0].get::<i32, _>(4),
        Some(1),
        "DATEDIFF counts month boundaries"
    );
    assert_eq!(r[0].get::<i32, _>(5), Some(2024));
    assert_eq!(r[0].get::<i32, _>(6), Some(7));
}

#[tokio::test]
async fn rowversion_text_and_catalog_edges() {
    let s = sim("surface3").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE r (id int IDENTITY(10, 10) PRIMARY KEY, rv rowversion, vc varchar(10), nv nvarchar(10), sv sql_variant, h hierarchyid, geo geography, \
         parent int NULL, CONSTRAINT FK_r_parent FOREIGN KEY (parent) REFERENCES r (id))",
    )
    .await;
    exec(&mut c, "INSERT INTO r (vc, nv) VALUES (N'€uro', NCHAR(55296)); INSERT INTO r (vc, parent) VALUES ('x', 10)").await;
    // rowversion: set on insert, rising on every update, 8 bytes, below @@DBTS.
    let before = rows(&mut c, "SELECT rv FROM r WHERE id = 10").await[0]
        .get::<&[u8], _>(0)
        .unwrap()
        .to_vec();
    exec(&mut c, "UPDATE r SET nv = nv WHERE id = 10").await;
    let r = rows(&mut c, "SELECT rv, @@DBTS FROM r WHERE id = 10").await;
    let after = r[0].get::<&[u8], _>(0).unwrap().to_vec();
    assert_eq!(before.len(), 8);
    assert!(
        after > before,
        "rowversion rises on update: {before:?} -> {after:?}"
    );
    assert_eq!(
        r[0].get::<&[u8], _>(1).map(|b| b.to_vec()),
        Some(after.clone())
    );
    // varchar holds code page 1252: '€' is byte 0x80 and comes back as '€'.
    let r = rows(
        &mut c,
        "SELECT vc, CAST(vc AS varbinary(10)), ASCII(vc), CHAR(128) FROM r WHERE id = 10",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("€uro"));
    assert_eq!(r[0].get::<&str, _>(3), Some("€"));
    assert_eq!(r[0].get::<i32, _>(2), Some(128));
    // A lone surrogate survives storage: its UTF-16 unit and bytes come back exactly.
    let r = rows(
        &mut c,
        "SELECT UNICODE(nv), DATALENGTH(nv), CAST(nv AS varbinary(10)) FROM r WHERE id = 10",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(0xD800));
    assert_eq!(r[0].get::<i32, _>(1), Some(2));
    assert_eq!(r[0].get::<&[u8], _>(2), Some(&[0x00u8, 0xD8][..]));
    // Catalog: CLR and variant types are declared as such; identity, FK columns, row counts, properties.
    let r = rows(&mut c, "SELECT c.name, t.name FROM sys.columns c JOIN sys.types t ON t.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID('r') AND c.column_id IN (2, 5, 6, 7) ORDER BY c.column_id").await;
    let got: Vec<(&str, &str)> = r
        .iter()
        .map(|r| (r.get::<&str, _>(0).unwrap(), r.get::<&str, _>(1).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("rv", "timestamp"),
            ("sv", "sql_variant"),
            ("h", "hierarchyid"),
            ("geo", "geography")
        ]
    );
    let r = rows(&mut c, "SELECT seed_value, increment_value, last_value FROM sys.identity_columns WHERE object_id = OBJECT_ID('r')").await;
    let d = |i: usize| {
        r[0].get::<rust_decimal::Decimal, _>(i)
            .map(|d| d.to_string())
    };
    assert_eq!(
        (d(0), d(1), d(2)),
        (Some("10".into()), Some("10".into()), Some("20".into()))
    );
    let r = rows(&mut c, "SELECT fk.name, COL_NAME_P.name, COL_NAME_R.name FROM sys.foreign_keys fk JOIN sys.foreign_key_columns fc ON fc.constraint_object_id = fk.object_id \
                          JOIN sys.columns COL_NAME_P ON COL_NAME_P.object_id = fc.parent_object_id AND COL_NAME_P.column_id = fc.parent_column_id \
                          JOIN sys.columns COL_NAME_R ON COL_NAME_R.object_id = fc.referenced_object_id AND COL_NAME_R.column_id = fc.referenced_column_id").await;
    assert_eq!(
        (
            r[0].get::<&str, _>(0),
            r[0].get::<&str, _>(1),
            r[0].get::<&str, _>(2)
        ),
        (Some("FK_r_parent"), Some("parent"), Some("id"))
    );
    let r = rows(&mut c, "SELECT COLUMNPROPERTY(OBJECT_ID('r'), 'id', 'IsIdentity'), COLUMNPROPERTY(OBJECT_ID('r'), 'nv', 'AllowsNull'), OBJECTPROPERTY(OBJECT_ID('r'), 'TableHasPrimaryKey')").await;
    assert_eq!(
        (
            r[0].get::<i32, _>(0),
            r[0].get::<i32, _>(1),
            r[0].get::<i32, _>(2)
        ),
        (Some(1), Some(1), Some(1))
    );
}

#[tokio::test]
async fn partitions_estimate_row_counts() {
    let s = sim("partitions").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE big (id int PRIMARY KEY); INSERT INTO big SELECT value FROM GENERATE_SERIES(1, 5000)").await;
    // Like SQL Server's, the count is maintained asynchronously; it reaches the table's size.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = rows(&mut c, "SELECT SUM(p.rows) FROM sys.partitions p WHERE p.object_id = OBJECT_ID('big') AND p.index_id IN (0, 1)").await;
        if r[0].get::<i64, _>(0) == Some(5000) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sys.partitions never reported 5000 rows: {:?}",
            r[0].get::<i64, _>(0)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn aggregates_keep_t_sql_result_types() {
    let s = sim("aggtypes").await;
    let mut c = connect(&s).await;
    exec(&mut c, "CREATE TABLE a (i int, b bigint, d decimal(10,2)); INSERT INTO a VALUES (1, 10, 1.25), (2, 20, 2.50)").await;
    let r = rows(
        &mut c,
        "SELECT SUM(i), SUM(b), AVG(i), MAX(d), SUM(d) FROM a",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(3));
    assert_eq!(r[0].get::<i64, _>(1), Some(30));
    assert_eq!(
        r[0].get::<i32, _>(2),
        Some(1),
        "AVG of int is an int, truncated"
    );
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(3)
            .map(|d| d.to_string()),
        Some("2.50".into())
    );
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(4)
            .map(|d| d.to_string()),
        Some("3.75".into())
    );
}

#[tokio::test]
async fn min_max_of_binary_and_uniqueidentifier() {
    let s = sim("minmax").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE m (id int PRIMARY KEY, b varbinary(10), g uniqueidentifier)",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO m VALUES (1, 0x0001, '00000000-0000-0000-0000-000000000001'), (2, 0x00FF, '01000000-0000-0000-0000-000000000000'), (3, 0x01, NULL)",
    )
    .await;
    let r = rows(&mut c, "SELECT MIN(b), MAX(b), MIN(g), MAX(g) FROM m").await;
    assert_eq!(r[0].get::<&[u8], _>(0), Some(&[0x00u8, 0x01][..]));
    assert_eq!(r[0].get::<&[u8], _>(1), Some(&[0x01u8][..]));
    // SQL Server orders uniqueidentifier by its last bytes first.
    assert_eq!(
        r[0].get::<uuid::Uuid, _>(2).map(|u| u.to_string()),
        Some("01000000-0000-0000-0000-000000000000".into())
    );
    assert_eq!(
        r[0].get::<uuid::Uuid, _>(3).map(|u| u.to_string()),
        Some("00000000-0000-0000-0000-000000000001".into())
    );
}

#[tokio::test]
async fn check_constraints_keep_their_t_sql_text() {
    let s = sim("checks").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE dbo.p (id int PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0), \
         code varchar(8) CONSTRAINT CK_p_code CHECK (code LIKE '[0-9][0-9]%'), \
         born date NULL, CONSTRAINT CK_p_born CHECK ([born] < '20500101' OR born IS NULL))",
    )
    .await;
    exec(
        &mut c,
        "ALTER TABLE dbo.p ADD CONSTRAINT CK_p_both CHECK (qty < 1000 AND id > 0)",
    )
    .await;
    let got: Vec<(String, i32, String, bool)> = rows(
        &mut c,
        "SELECT k.name, k.parent_column_id, k.definition, k.is_disabled FROM sys.check_constraints k \
         WHERE k.parent_object_id = OBJECT_ID('dbo.p') ORDER BY k.name",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.get::<&str, _>(0).unwrap().to_string(),
            r.get::<i32, _>(1).unwrap(),
            r.get::<&str, _>(2).unwrap().to_string(),
            r.get::<bool, _>(3).unwrap(),
        )
    })
    .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    let by = |n: &str| {
        got.iter()
            .find(|g| g.0 == n)
            .unwrap_or_else(|| panic!("{n}: {got:?}"))
    };
    assert_eq!(by("CK_p_code").2, "(code LIKE '[0-9][0-9]%')");
    assert_eq!(by("CK_p_born").2, "([born] < '20500101' OR born IS NULL)");
    assert_eq!(by("CK_p_both").2, "(qty < 1000 AND id > 0)");
    let auto = got
        .iter()
        .find(|g| g.0.starts_with("CK__"))
        .expect("the unnamed one");
    assert_eq!(auto.2, "(qty >= 0)");
    assert!(auto.1 > 0 && !auto.3);
    // They are enforced, as SQL Server enforces them (547: the CHECK constraint conflict).
    let n = error_number(&mut c, "INSERT INTO dbo.p VALUES (1, -1, '12', NULL)").await;
    assert_eq!(n, 547);
    exec(&mut c, "INSERT INTO dbo.p VALUES (1, 1, '12x', '20240101')").await;
}

#[tokio::test]
async fn sql_variant_keeps_each_values_base_type() {
    let s = sim("variant").await;
    let mut c = connect(&s).await;
    exec(
        &mut c,
        "CREATE TABLE v (id int PRIMARY KEY, x sql_variant NULL); \
         INSERT INTO v VALUES (1, 42), (2, N'forty-two'), (3, 'latin'), (4, 4.25), \
           (5, CAST('2024-02-29T10:11:12.123' AS datetime)), (6, CAST(2.5E0 AS float)), \
           (7, 0x0A0B), (8, NULL), (9, CAST(7 AS bigint)); \
         INSERT INTO v (id, x) SELECT 10, CAST(id AS smallint) FROM v WHERE id = 1; \
         UPDATE v SET x = N'changed' WHERE id = 3",
    )
    .await;
    let r = rows(
        &mut c,
        "SELECT id, CAST(SQL_VARIANT_PROPERTY(x, 'BaseType') AS nvarchar(128)), CAST(x AS nvarchar(4000)), x \
         FROM v ORDER BY id",
    )
    .await;
    type Row<'a> = (i32, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let got: Vec<Row> = r
        .iter()
        .map(|r| {
            (
                r.get::<i32, _>(0).unwrap(),
                r.get::<&str, _>(1),
                r.get::<&str, _>(2),
                r.get::<&str, _>(3),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some("int"), Some("42"), Some("42")),
            (2, Some("nvarchar"), Some("forty-two"), Some("forty-two")),
            (3, Some("nvarchar"), Some("changed"), Some("changed")),
            (4, Some("numeric"), Some("4.25"), Some("4.25")),
            (
                5,
                Some("datetime"),
                Some("2024-02-29 10:11:12.123"),
                Some("2024-02-29 10:11:12.123")
            ),
            (6, Some("float"), Some("2.5"), Some("2.5")),
            (7, Some("varbinary"), Some("0x0A0B"), Some("0x0A0B")),
            (8, None, None, None),
            (9, Some("bigint"), Some("7"), Some("7")),
            (10, Some("smallint"), Some("1"), Some("1")),
        ]
    );
    // Compared with a value of another type, as text and as a number.
    let r = rows(
        &mut c,
        "SELECT COUNT(*), (SELECT CAST(x AS int) + 1 FROM v WHERE id = 1) FROM v WHERE x = N'forty-two'",
    )
    .await;
    assert_eq!(
        (r[0].get::<i32, _>(0), r[0].get::<i32, _>(1)),
        (Some(1), Some(43))
    );
}
