//! The initial load: types at their boundaries, hostile identifiers, keys, refusals.

use crate::common::*;
use replicator::state::TableState;
use std::time::Duration;

pub(crate) const TYPES: &str = r#"
CREATE TABLE dbo.types (
 id int NOT NULL PRIMARY KEY,
 t tinyint NULL, s smallint NULL, b bigint NULL, bt bit NULL,
 m money NULL, sm smallmoney NULL,
 d38 decimal(38,0) NULL, d3838 decimal(38,38) NULL, n18 numeric(18,2) NULL,
 r real NULL, f float NULL,
 dt datetime NULL, sdt smalldatetime NULL, d2 datetime2 NULL, d2_3 datetime2(3) NULL, da date NULL,
 tm time NULL, dto datetimeoffset NULL,
 vc varchar(10) NULL, nvc nvarchar(20) NULL, nmax nvarchar(max) NULL, ch char(3) NULL,
 vb varbinary(8) NULL, bmax varbinary(max) NULL, g uniqueidentifier NULL, x xml NULL
);
INSERT INTO dbo.types VALUES (1, 255, 32767, 9223372036854775807, 1, 922337203685477.5807, 214748.3647,
 99999999999999999999999999999999999999, 0.99999999999999999999999999999999999999, 9999999999999999.99,
 -1.5, 1.7976931348623157E308,
 '9999-12-31 23:59:59.997', '2079-06-06 23:59', '9999-12-31 23:59:59.9999999', '2000-01-01 00:00:00.123', '9999-12-31',
 '23:59:59.9999999', '2020-05-01 10:00:00.1234567 +05:30',
 'abcdefghij', N'☃ naïve 𝄞', N'a' + NCHAR(0) + N'b', 'ab', 0xDEADBEEF, 0x, '6F9619FF-8B86-D011-B42D-00C04FD430C8', '<a>1</a>');
INSERT INTO dbo.types VALUES (2, 0, -32768, -9223372036854775808, 0, -922337203685477.5808, -214748.3648,
 -99999999999999999999999999999999999999, -0.00000000000000000000000000000000000001, -0.01,
 0, -2.2250738585072014E-308,
 '1753-01-01 00:00:00.003', '1900-01-01 00:00', '0001-01-01 00:00:00', NULL, '0001-01-01',
 '00:00:00', '2000-01-01 00:00:00 -08:00',
 '', N'', NCHAR(55296), NULL, 0x00, NULL, '00000000-0000-0000-0000-000000000000', NULL);
INSERT INTO dbo.types (id) VALUES (3);
ALTER TABLE dbo.types ENABLE CHANGE_TRACKING;
"#;

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_exactly_at_its_boundaries() {
    let env = Env::new("types").await;
    let mut c = env.tds().await;
    exec(&mut c, TYPES).await;
    let d = Daemon::start(env.config("[[tables]]\nsource = \"dbo.types\"\n"));
    d.wait_state(
        &["dbo.types"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    pg.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let cols = [
        "id", "t", "s", "b", "bt", "m", "sm", "d38", "d3838", "n18", "r", "f", "dt", "sdt", "d2",
        "d2_3", "da", "tm", "dto", "vc", "nvc", "nmax", "ch", "vb", "bmax", "g", "x",
    ];
    let rows = target_rows(&pg, "public.types", &cols, "id").await;
    let expected_1 = vec![
        s("1"),
        s("255"),
        s("32767"),
        s("9223372036854775807"),
        s("true"),
        s("922337203685477.5807"),
        s("214748.3647"),
        s("99999999999999999999999999999999999999"),
        s("0.99999999999999999999999999999999999999"),
        s("9999999999999999.99"),
        s("-1.5"),
        s("1.7976931348623157e+308"),
        // datetime's .997 is 299/300 s: exactly 0.996667 s to the microsecond.
        s("9999-12-31 23:59:59.996667"),
        s("2079-06-06 23:59:00"),
        s("9999-12-31 23:59:59.999999"),
        s("2000-01-01 00:00:00.123"),
        s("9999-12-31"),
        s("23:59:59.999999"),
        s("2020-05-01 04:30:00.123456+00"),
        s("abcdefghij"),
        s("☃ naïve 𝄞"),
        s("ab"),
        s("ab"), // character(3) holds 'ab ', and ::text drops the padding
        s("\\xdeadbeef"),
        s("\\x"),
        s("6f9619ff-8b86-d011-b42d-00c04fd430c8"),
        s("<a>1</a>"),
    ];
    let expected_2 = vec![
        s("2"),
        s("0"),
        s("-32768"),
        s("-9223372036854775808"),
        s("false"),
        s("-922337203685477.5808"),
        s("-214748.3648"),
        s("-99999999999999999999999999999999999999"),
        s("-0.00000000000000000000000000000000000001"),
        s("-0.01"),
        s("0"),
        s("-2.2250738585072014e-308"),
        s("1753-01-01 00:00:00.003333"),
        s("1900-01-01 00:00:00"),
        s("0001-01-01 00:00:00"),
        None,
        s("0001-01-01"),
        s("00:00:00"),
        s("2000-01-01 08:00:00+00"),
        s(""),
        s(""),
        s("\u{FFFD}"),
        None,
        s("\\x00"),
        None,
        s("00000000-0000-0000-0000-000000000000"),
        None,
    ];
    let mut expected_3 = vec![None; cols.len()];
    expected_3[0] = s("3");
    assert_eq!(rows.len(), 3);
    for (i, (got, want)) in rows[0].iter().zip(&expected_1).enumerate() {
        assert_eq!(got, want, "row 1, column {}", cols[i]);
    }
    for (i, (got, want)) in rows[1].iter().zip(&expected_2).enumerate() {
        assert_eq!(got, want, "row 2, column {}", cols[i]);
    }
    assert_eq!(rows[2], expected_3);
    // Every lossy conversion is counted per column.
    let rec = d.table("dbo.types").unwrap();
    let loss = |col: &str, kind: &str| {
        rec.losses
            .iter()
            .find(|(c, k, _)| c == col && k == kind)
            .map(|l| l.2)
    };
    assert_eq!(loss("nmax", "nul_stripped"), Some(1), "{:?}", rec.losses);
    assert_eq!(
        loss("nmax", "lone_surrogate_replaced"),
        Some(1),
        "{:?}",
        rec.losses
    );
    assert_eq!(
        loss("d2", "sub_microsecond_truncated"),
        Some(1),
        "{:?}",
        rec.losses
    );
    assert_eq!(
        loss("tm", "sub_microsecond_truncated"),
        Some(1),
        "{:?}",
        rec.losses
    );
    assert_eq!(
        loss("dto", "sub_microsecond_truncated"),
        Some(1),
        "{:?}",
        rec.losses
    );
    // The target's types are the mapped ones.
    let ty = |col: &'static str| {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.types'::regclass AND attname = $1",
                &[&col],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    assert_eq!(ty("t").await, "smallint");
    assert_eq!(ty("m").await, "numeric(19,4)");
    assert_eq!(ty("d3838").await, "numeric(38,38)");
    assert_eq!(ty("dto").await, "timestamp with time zone");
    assert_eq!(ty("nvc").await, "character varying(20)");
    // char(n) pads and compares ignoring trailing spaces, as on SQL Server.
    assert_eq!(ty("ch").await, "character(3)");
    let padded: (i64, i32) = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE ch = 'ab'), max(octet_length(ch)) FROM public.types WHERE id = 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(padded, (1, 3));
    assert_eq!(ty("g").await, "uuid");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_composite_keys_uuid_order_and_empty_tables() {
    let env = Env::new("hostile").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE SCHEMA [we ird]").await;
    exec(
        &mut c,
        r#"CREATE TABLE [we ird].[x]]y "t"] ([a"b] int NOT NULL, [select] nvarchar(10) NOT NULL, [naïve col] int NULL,
  CONSTRAINT [p k] PRIMARY KEY ([a"b], [select]));
CREATE TABLE dbo.guids (g uniqueidentifier NOT NULL PRIMARY KEY, n int NOT NULL);
CREATE TABLE dbo.empty (id int NOT NULL PRIMARY KEY, v nvarchar(5) NULL);
ALTER TABLE [we ird].[x]]y "t"] ENABLE CHANGE_TRACKING;
ALTER TABLE dbo.guids ENABLE CHANGE_TRACKING;
ALTER TABLE dbo.empty ENABLE CHANGE_TRACKING;"#,
    )
    .await;
    let mut values = Vec::new();
    for a in 0..4 {
        for k in ["b", "B2", "a", "ü", "Z z", "x]y", "q\"t"] {
            values.push(format!("({a}, N'{k}', {a})"));
        }
    }
    exec(
        &mut c,
        &format!(
            "INSERT INTO [we ird].[x]]y \"t\"] VALUES {}",
            values.join(", ")
        ),
    )
    .await;
    // GUIDs differing in each byte group: SQL Server orders them by the last six bytes first.
    let mut guids = Vec::new();
    for i in 0..30u32 {
        let g = format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            i.wrapping_mul(2654435761),
            (i * 7919) % 65536,
            (i * 104729) % 65536,
            (i * 31) % 65536,
            (i as u64 * 1_000_003) % 0xFFFF_FFFF_FFFF
        );
        guids.push(format!("('{g}', {i})"));
    }
    exec(
        &mut c,
        &format!("INSERT INTO dbo.guids VALUES {}", guids.join(", ")),
    )
    .await;
    let d = Daemon::start(env.config(
        "[replication]\nsnapshot_chunk_rows = 4\n[[tables]]\nsource = \"dbo.*\"\n[[tables]]\nsource = \"[we ird].*\"\n",
    ));
    let names = ["[we ird].[x]]y \"t\"]", "dbo.guids", "dbo.empty"];
    let names: Vec<String> = names
        .iter()
        .map(|n| replicator::model::TableName::parse(n).unwrap().to_string())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    d.wait_state(&refs, TableState::Streaming, Duration::from_secs(60))
        .await;
    let pg = env.pg().await;
    let got = target_rows(
        &pg,
        "\"we ird\".\"x]y \"\"t\"\"\"",
        &["\"a\"\"b\"", "\"select\"", "\"naïve col\""],
        "1, 2",
    )
    .await;
    let want = source_rows(
        &mut c,
        "SELECT [a\"b], [select], [naïve col] FROM [we ird].[x]]y \"t\"]",
    )
    .await;
    let mut want = want;
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want);
    assert_eq!(got.len(), 28);
    let got = target_rows(&pg, "public.guids", &["g", "n"], "n").await;
    let want = source_rows(&mut c, "SELECT g, n FROM dbo.guids ORDER BY n").await;
    assert_eq!(got, want, "every GUID exactly once across 8 keyset chunks");
    assert_eq!(
        target_rows(&pg, "public.empty", &["id"], "id").await.len(),
        0
    );
    assert_eq!(d.table("dbo.empty").unwrap().rows_copied, 0);
    // Changes through the staging/apply path, then a fenced cutover (full validation, THROW
    // triggers named after the hostile schema) on the same names.
    exec(
        &mut c,
        "UPDATE [we ird].[x]]y \"t\"] SET [naïve col] = 99 WHERE [select] = N'x]y'; \
         DELETE FROM [we ird].[x]]y \"t\"] WHERE [select] = N'q\"t' AND [a\"b] = 1; \
         INSERT INTO [we ird].[x]]y \"t\"] VALUES (7, N'it''s', NULL)",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT [a\"b], [select], [naïve col] FROM [we ird].[x]]y \"t\"]",
        "\"we ird\".\"x]y \"\"t\"\"\"",
        &["\"a\"\"b\"", "\"select\"", "\"naïve col\""],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
    let report = replicator::cutover::run(
        env.config("[[tables]]\nsource = \"dbo.*\"\n[[tables]]\nsource = \"[we ird].*\"\n"),
        {
            let mut o = replicator::cutover::Options::new(true);
            o.timeout = Duration::from_secs(60);
            o
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{}", report.render());
    assert_eq!(report.fence.as_ref().unwrap().tables.len(), 3);
    let fenced = c
        .simple_query("INSERT INTO [we ird].[x]]y \"t\"] VALUES (8, N'late', NULL)")
        .await;
    let refused = match fenced {
        Ok(stream) => stream.into_results().await.err(),
        Err(e) => Some(e),
    };
    assert!(
        refused.is_some_and(|e| e.to_string().contains("are fenced")),
        "a write after a fenced cutover is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_primary_key_is_named_unless_a_key_is_configured() {
    let env = Env::new("nopk").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.heap (code varchar(10) NOT NULL, v int NULL); CREATE UNIQUE INDEX ux ON dbo.heap (code); INSERT INTO dbo.heap VALUES ('a', 1), ('b', 2)").await;
    let cfg = env.config("[[tables]]\nsource = \"dbo.heap\"\nchange_source = \"none\"\n");
    let store = replicator::state::Store::open(&cfg.state_dir).unwrap();
    let err = replicator::daemon::run(replicator::daemon::shared(cfg, store))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dbo.heap") && err.contains("no primary key") && err.contains("tables[0].key"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(env.dir.join("state"));
    let d =
        Daemon::start(env.config(
            "[[tables]]\nsource = \"dbo.heap\"\nchange_source = \"none\"\nkey = [\"code\"]\n",
        ));
    d.wait_until("heap copied", Duration::from_secs(60), |d| {
        d.table("dbo.heap").is_some_and(|r| {
            r.rows_copied == 2
                && r.state != TableState::Snapshotting
                && r.state != TableState::Pending
        })
    })
    .await;
    let pg = env.pg().await;
    assert_eq!(
        target_rows(&pg, "public.heap", &["code", "v"], "code").await,
        vec![
            vec![Some("a".into()), Some("1".into())],
            vec![Some("b".into()), Some("2".into())]
        ]
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_planned_stops_alone_and_the_others_run() {
    let env = Env::new("unplannable").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.heap (code varchar(10) NOT NULL, v int NULL); INSERT INTO dbo.heap VALUES ('a', 1); \
        CREATE TABLE dbo.keyed (id int NOT NULL PRIMARY KEY, v int NULL); INSERT INTO dbo.keyed VALUES (1, 10), (2, 20)").await;
    let d = Daemon::start(env.config("[[tables]]\nsource = \"dbo.*\"\nchange_source = \"none\"\n"));
    d.wait_until("keyed copied, heap stopped", Duration::from_secs(60), |d| {
        d.table("dbo.keyed").is_some_and(|r| {
            r.rows_copied == 2
                && r.state != TableState::Snapshotting
                && r.state != TableState::Pending
        }) && d
            .table("dbo.heap")
            .is_some_and(|r| r.state == TableState::Errored)
    })
    .await;
    let err = d.table("dbo.heap").unwrap().last_error.unwrap();
    assert!(
        err.message.contains("dbo.heap") && err.message.contains("no primary key"),
        "{}",
        err.message
    );
    assert!(
        err.hint
            .as_deref()
            .is_some_and(|h| h.contains("tables[].key")),
        "{:?}",
        err.hint
    );
    let pg = env.pg().await;
    let heap = pg
        .query_one("SELECT to_regclass('public.heap') IS NULL", &[])
        .await
        .unwrap();
    assert!(
        heap.get::<_, bool>(0),
        "nothing is created for a table that cannot be planned"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_target_table_of_another_shape_is_refused_and_left_alone() {
    let env = Env::new("shape").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(10) NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING; INSERT INTO dbo.t VALUES (1, N'x')").await;
    let pg = env.pg().await;
    pg.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v integer); INSERT INTO public.t VALUES (7, 7)",
    )
    .await
    .unwrap();
    let d = Daemon::start(env.config("[[tables]]\nsource = \"dbo.t\"\n"));
    d.wait_state(&["dbo.t"], TableState::Errored, Duration::from_secs(30))
        .await;
    let err = d.table("dbo.t").unwrap().last_error.unwrap();
    assert!(
        err.message.contains("public.t.v") && err.message.contains("integer"),
        "{}",
        err.message
    );
    assert!(err.hint.unwrap_or_default().contains("never altered"));
    assert_eq!(
        target_rows(&pg, "public.t", &["id", "v"], "id").await,
        vec![vec![Some("7".into()), Some("7".into())]]
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_rename_exclude_expression_and_type_override() {
    let env = Env::new("columns").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.people (Id int NOT NULL PRIMARY KEY, Email nvarchar(100) NOT NULL, Secret nvarchar(50) NULL, Born datetime2(7) NULL); ALTER TABLE dbo.people ENABLE CHANGE_TRACKING; INSERT INTO dbo.people VALUES (1, N'A@x.org', N'pw', '1990-01-02 03:04:05.1234567')").await;
    let d = Daemon::start(env.config(
        r#"[[tables]]
source = "dbo.people"
[tables.columns.Email]
rename = "email_upper"
expression = "UPPER([Email])"
type = "text"
[tables.columns.Secret]
exclude = true
[tables.columns.Born]
type = "text"
"#,
    ));
    d.wait_state(
        &["dbo.people"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    assert_eq!(
        target_rows(&pg, "public.people", &["id", "email_upper", "born"], "id").await,
        vec![vec![
            Some("1".into()),
            Some("A@X.ORG".into()),
            Some("1990-01-02 03:04:05.1234567".into())
        ]]
    );
    let cols: Vec<String> = pg
        .query("SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.people'::regclass AND attnum > 0 ORDER BY attnum", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cols, ["id", "email_upper", "born"]);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_column_table_and_a_20_mb_value() {
    let env = Env::new("wide").await;
    let mut c = env.tds().await;
    let cols: Vec<String> = (1..300).map(|i| format!("c{i} int NULL")).collect();
    exec(&mut c, &format!("CREATE TABLE dbo.wide (id int NOT NULL PRIMARY KEY, {}); ALTER TABLE dbo.wide ENABLE CHANGE_TRACKING", cols.join(", "))).await;
    for r in 0..5 {
        let vals: Vec<String> = (1..300)
            .map(|i| {
                if (i + r) % 7 == 0 {
                    "NULL".into()
                } else {
                    (i * 1000 + r).to_string()
                }
            })
            .collect();
        exec(
            &mut c,
            &format!("INSERT INTO dbo.wide VALUES ({r}, {})", vals.join(", ")),
        )
        .await;
    }
    exec(&mut c, "CREATE TABLE dbo.blobs (id int NOT NULL PRIMARY KEY, data varbinary(max) NULL); ALTER TABLE dbo.blobs ENABLE CHANGE_TRACKING").await;
    // 20 MB of non-repeating bytes, sent as a parameter.
    let blob: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut q = tiberius::Query::new("INSERT INTO dbo.blobs VALUES (1, @P1), (2, NULL)");
    q.bind(blob.clone());
    q.execute(&mut c).await.unwrap();
    let d = Daemon::start(
        env.config("[[tables]]\nsource = \"dbo.wide\"\n[[tables]]\nsource = \"dbo.blobs\"\n"),
    );
    d.wait_state(
        &["dbo.wide", "dbo.blobs"],
        TableState::Streaming,
        Duration::from_secs(120),
    )
    .await;
    let pg = env.pg().await;
    let names: Vec<String> = std::iter::once("id".to_string())
        .chain((1..300).map(|i| format!("c{i}")))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let want = source_rows(
        &mut c,
        &format!("SELECT {} FROM dbo.wide ORDER BY id", names.join(", ")),
    )
    .await;
    assert_eq!(target_rows(&pg, "public.wide", &refs, "id").await, want);
    let row = pg
        .query_one("SELECT data FROM public.blobs WHERE id = 1", &[])
        .await
        .unwrap();
    let got: Vec<u8> = row.get(0);
    assert!(
        got == blob,
        "20 MB value differs (len {} vs {})",
        got.len(),
        blob.len()
    );
    let null: Option<Vec<u8>> = pg
        .query_one("SELECT data FROM public.blobs WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert!(null.is_none());
    // The same value through a change window.
    let mut q = tiberius::Query::new("UPDATE dbo.blobs SET data = @P1 WHERE id = 2");
    let reversed: Vec<u8> = blob.iter().rev().copied().collect();
    q.bind(reversed.clone());
    q.execute(&mut c).await.unwrap();
    eventually(
        "the updated 20 MB value",
        Duration::from_secs(60),
        || async {
            let v: Option<Vec<u8>> = pg
                .query_one("SELECT data FROM public.blobs WHERE id = 2", &[])
                .await
                .unwrap()
                .get(0);
            v.as_deref() == Some(reversed.as_slice())
        },
    )
    .await;
    d.stop().await.unwrap();
}
