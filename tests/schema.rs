//! Schema conversion of what real databases hold: CHECK constraints translated and created
//! `NOT VALID` after the snapshot, enforced on the target, validated at cutover; the
//! untranslatable left out and named; defaults the expression translator carries;
//! descriptions as comments.

use crate::common::*;
use replicator::state::TableState;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_constraints_are_translated_enforced_and_validated_at_cutover() {
    let env = Env::new("checks").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.prod (id int NOT NULL PRIMARY KEY, \
           qty int NOT NULL CHECK (qty >= 0), \
           code varchar(10) NOT NULL CONSTRAINT CK_code CHECK (code LIKE '[A-Z][0-9]%'), \
           price money NOT NULL, \
           name nvarchar(40) NOT NULL CONSTRAINT CK_name CHECK (name <> N''), \
           discontinued bit NOT NULL DEFAULT (0), \
           created datetime2 NULL DEFAULT (dateadd(day, (1), sysdatetime())), \
           stock_value AS (qty * price) PERSISTED, \
           CONSTRAINT CK_price CHECK (price >= 0 AND price < 100000), \
           CONSTRAINT CK_disc CHECK (discontinued = 0 OR qty = 0), \
           CONSTRAINT CK_untranslated CHECK (CAST(price AS int) >= 0)); \
         ALTER TABLE dbo.prod ENABLE CHANGE_TRACKING",
    )
    .await;
    exec(
        &mut c,
        "INSERT INTO dbo.prod (id, qty, code, price, name, discontinued) VALUES \
           (1, 5, 'A1', 9.5, N'one', 0), (2, 0, 'b2x', 0, N'two', 1)",
    )
    .await;
    exec(
        &mut c,
        "EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'What we sell; it''s all here', \
           @level0type = N'SCHEMA', @level0name = N'dbo', @level1type = N'TABLE', @level1name = N'prod'; \
         EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'Units in stock', \
           @level0type = N'SCHEMA', @level0name = N'dbo', @level1type = N'TABLE', @level1name = N'prod', \
           @level2type = N'COLUMN', @level2name = N'qty'",
    )
    .await;
    let d = Daemon::start(
        env.config("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.prod\"\n"),
    );
    d.wait_state(
        &["dbo.prod"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    let checks: Vec<(String, bool)> = pg
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint \
             WHERE conrelid = 'public.prod'::regclass AND contype = 'c' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 5, "{checks:?}");
    for n in ["ck_code", "ck_disc", "ck_name", "ck_price"] {
        assert!(names.contains(&n), "{n}: {checks:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("ck__prod")),
        "{checks:?}"
    );
    assert!(!names.contains(&"ck_untranslated"), "{checks:?}");
    assert!(
        checks.iter().all(|(_, valid)| !valid),
        "NOT VALID: {checks:?}"
    );
    // Descriptions become comments.
    let (table_comment, column_comment): (Option<String>, Option<String>) = pg
        .query_one(
            "SELECT obj_description('public.prod'::regclass, 'pg_class'), \
                    col_description('public.prod'::regclass, (SELECT attnum FROM pg_attribute \
                      WHERE attrelid = 'public.prod'::regclass AND attname = 'qty'))",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        table_comment.as_deref(),
        Some("What we sell; it's all here")
    );
    assert_eq!(column_comment.as_deref(), Some("Units in stock"));
    // The translated default.
    let default: Option<String> = pg
        .query_one(
            "SELECT column_default::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = 'prod' AND column_name = 'created'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        default.as_deref().is_some_and(|d| d.contains("interval")),
        "{default:?}"
    );
    // Enforced on the target as at the source: case-insensitively for the LIKE class, bit
    // against 0, money's bounds.
    let try_insert = |code: &'static str, qty: i32, disc: bool, price: &'static str| {
        let pg = &pg;
        async move {
            pg.batch_execute("BEGIN; SET LOCAL replicator.writer = 'on'")
                .await
                .unwrap();
            let r = pg
                .execute(
                    &format!(
                        "INSERT INTO public.prod (id, qty, code, price, name, discontinued) \
                         VALUES (99, $1, $2, {price}, 'n', $3)"
                    ),
                    &[&qty, &code, &disc],
                )
                .await;
            pg.batch_execute("ROLLBACK").await.unwrap();
            r.map(|_| ()).map_err(|e| {
                e.as_db_error().map(|d| {
                    (
                        d.code().code().to_string(),
                        d.constraint().map(str::to_string),
                    )
                })
            })
        }
    };
    assert_eq!(try_insert("a1zz", 1, false, "1").await, Ok(()));
    assert_eq!(
        try_insert("xx", 1, false, "1").await,
        Err(Some(("23514".into(), Some("ck_code".into()))))
    );
    assert_eq!(
        try_insert("A1", 1, true, "1").await,
        Err(Some(("23514".into(), Some("ck_disc".into()))))
    );
    assert_eq!(
        try_insert("A1", 0, false, "100000").await,
        Err(Some(("23514".into(), Some("ck_price".into()))))
    );
    assert!(try_insert("A1", -1, false, "1").await.is_err());
    // Changes stream through the constraints.
    exec(
        &mut c,
        "INSERT INTO dbo.prod (id, qty, code, price, name, discontinued) VALUES (3, 0, 'C3', 1, N'three', 1); \
         UPDATE dbo.prod SET qty = 7 WHERE id = 1",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, qty, code FROM dbo.prod",
        "public.prod",
        &["id", "qty", "code"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
    // The computed column is generated by PostgreSQL, equal to the source's values.
    let generated: Vec<String> = pg
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.prod'::regclass \
             AND attgenerated = 's'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(generated, ["stock_value"]);
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, CAST(stock_value AS decimal(19,4)) FROM dbo.prod",
        "public.prod",
        &["id", "stock_value"],
        Duration::from_secs(30),
    )
    .await;
    // A constraint missing on a streaming table (dropped here; or a table copied by an earlier
    // release) is made again at the next start.
    pg.batch_execute("ALTER TABLE public.prod DROP CONSTRAINT ck_price")
        .await
        .unwrap();
    let cfg = env.config_file(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.prod\"\n",
    );
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let again: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.prod'::regclass AND conname = 'ck_price'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, 1);
    // Cutover validates them against every row.
    cutover_succeeds(&cfg);
    let _ = daemon.wait();
    let unvalidated: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.prod'::regclass \
             AND contype = 'c' AND NOT convalidated",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unvalidated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_variant_and_hierarchyid_columns_arrive_as_text_without_configuration() {
    let env = Env::new("variant").await;
    let mut c = env.tds().await;
    // The same values twice: as text (the default) and as jsonb with their base types.
    let values = "(1, '/', N'root'), (2, '/1/', 42), (3, '/1/2/', NULL), (4, NULL, N'x'), \
        (5, '/3/', CAST(0.1 AS float)), (6, '/4/', CAST(12.3456 AS money)), \
        (7, '/5/', CAST('2024-02-29T10:11:12.123' AS datetime)), (8, '/6/', 0x0A0B), \
        (9, '/7/', CAST(1 AS bit)), (10, '/8/', N'say \"hi\"\\ \u{e9}'), (11, '/9/', -4.25)";
    exec(
        &mut c,
        &format!(
            "CREATE TABLE dbo.org (id int NOT NULL PRIMARY KEY, node hierarchyid NULL, attr sql_variant NULL); \
             CREATE TABLE dbo.orgj (id int NOT NULL PRIMARY KEY, node hierarchyid NULL, attr sql_variant NULL); \
             ALTER TABLE dbo.org ENABLE CHANGE_TRACKING; ALTER TABLE dbo.orgj ENABLE CHANGE_TRACKING; \
             INSERT INTO dbo.org VALUES {values}; INSERT INTO dbo.orgj VALUES {values}"
        ),
    )
    .await;
    let tables = "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.org\"\n\
                  [[tables]]\nsource = \"dbo.orgj\"\n[tables.columns.attr]\ntype = \"jsonb\"\n";
    let cfg = env.config_file(tables);
    // The report says what each column becomes and which base types its values hold.
    let dir = env.dir.join("assessment");
    let out = replicator(&cfg, &["schema", "--report", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let detail = |table: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["table"] == table && o["object"] == "column attr")
            .map(|o| o["detail"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for t in ["dbo.org", "dbo.orgj"] {
        assert!(
            detail(t).contains("base types of its values: bit (1), datetime (1), float (1), int (1), money (1), numeric (1), nvarchar (3), varbinary (1)"),
            "{t}: {}",
            detail(t)
        );
    }
    assert!(
        detail("dbo.orgj").contains("becomes jsonb"),
        "{}",
        detail("dbo.orgj")
    );

    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 2).await;
    exec(
        &mut c,
        "INSERT INTO dbo.org VALUES (12, '/1/3/', N'new'); UPDATE dbo.org SET node = '/2/' WHERE id = 4; \
         INSERT INTO dbo.orgj VALUES (12, '/1/3/', CAST(2.5 AS real)); UPDATE dbo.orgj SET attr = 7 WHERE id = 4",
    )
    .await;
    let pg = env.pg().await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, CAST(node AS nvarchar(4000)) FROM dbo.org",
        "public.org",
        &["id", "node"],
        Duration::from_secs(30),
    )
    .await;
    let types: Vec<String> = pg
        .query(
            "SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns \
             WHERE table_name IN ('org', 'orgj') AND column_name IN ('node', 'attr') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "org.attr text",
            "org.node text",
            "orgj.attr jsonb",
            "orgj.node text"
        ]
    );
    // Every value exactly: a float's every digit, money's four decimals, datetime's
    // milliseconds, bytes as hex.
    let text: Vec<(i32, Option<String>)> = pg
        .query("SELECT id, attr FROM public.org ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = |s: &str| Some(s.to_string());
    assert_eq!(
        text,
        [
            (1, want("root")),
            (2, want("42")),
            (3, None),
            (4, want("x")),
            (5, want("0.1")),
            (6, want("12.3456")),
            (7, want("2024-02-29 10:11:12.123")),
            (8, want("0x0A0B")),
            (9, want("1")),
            (10, want("say \"hi\"\\ \u{e9}")),
            (11, want("-4.25")),
            (12, want("new")),
        ]
    );
    let read_jsonb = || async {
        pg.query("SELECT id, attr::text FROM public.orgj ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, Option<String>>(1)))
            .collect::<Vec<_>>()
    };
    eventually(
        "the jsonb table's changes",
        Duration::from_secs(30),
        || async {
            let rows = read_jsonb().await;
            rows.len() == 12 && rows[3].1.as_deref() == Some(r#"{"type": "int", "value": 7}"#)
        },
    )
    .await;
    let jsonb = read_jsonb().await;
    assert_eq!(
        jsonb,
        [
            (1, want(r#"{"type": "nvarchar", "value": "root"}"#)),
            (2, want(r#"{"type": "int", "value": 42}"#)),
            (3, None),
            (4, want(r#"{"type": "int", "value": 7}"#)),
            (5, want(r#"{"type": "float", "value": 0.1}"#)),
            (6, want(r#"{"type": "money", "value": 12.3456}"#)),
            (
                7,
                want(r#"{"type": "datetime", "value": "2024-02-29 10:11:12.123"}"#)
            ),
            (8, want(r#"{"type": "varbinary", "value": "0x0A0B"}"#)),
            (9, want(r#"{"type": "bit", "value": true}"#)),
            (
                10,
                want(r#"{"type": "nvarchar", "value": "say \"hi\"\\ é"}"#)
            ),
            (11, want(r#"{"type": "numeric", "value": -4.25}"#)),
            (12, want(r#"{"type": "real", "value": 2.5}"#)),
        ]
    );
    // The full validation compares every row of both tables and finds them equal.
    let out = replicator(&cfg, &["validate", "--full", "--json"]);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(results.as_array().map(Vec::len), Some(2), "{results}");
    for r in results.as_array().unwrap() {
        assert_eq!(r["result"], "equal", "{r}");
        assert_eq!(r["source_rows"], 12, "{r}");
    }
    // A base type changed on the target alone is a difference.
    pg.batch_execute(
        "BEGIN; SET LOCAL replicator.writer = 'on'; \
         UPDATE public.orgj SET attr = '{\"type\": \"bigint\", \"value\": 42}' WHERE id = 2; COMMIT",
    )
    .await
    .unwrap();
    let out = replicator(
        &cfg,
        &["validate", "--full", "--json", "--table", "dbo.orgj"],
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_ne!(results[0]["result"], "equal", "{results}");
    let node: Option<String> = pg
        .query_one("SELECT node FROM public.org WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(node.as_deref(), Some("/1/2/"));
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// The extended WKB of a 2D point (little-endian, as SQL Server's WKB is).
fn ewkb_point(srid: u32, x: f64, y: f64) -> Vec<u8> {
    let mut b = vec![1u8];
    if srid == 0 {
        b.extend(1u32.to_le_bytes());
    } else {
        b.extend((1u32 | 0x2000_0000).to_le_bytes());
        b.extend(srid.to_le_bytes());
    }
    b.extend(x.to_le_bytes());
    b.extend(y.to_le_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geography_and_geometry_arrive_as_extended_wkb_with_their_srid() {
    let env = Env::new("spatial").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.place (id int NOT NULL PRIMARY KEY, loc geography NULL, shape geometry NULL); \
         ALTER TABLE dbo.place ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.place VALUES (1, geography::Point(47.5, -122.25, 4326), geometry::STGeomFromText('POINT (3 4)', 0)), \
           (2, geography::STGeomFromText('LINESTRING (-122.36 47.656, -122.343 47.656)', 4326), geometry::STGeomFromText('POLYGON ((0 0, 4 0, 4 4, 0 0))', 3857)), \
           (3, NULL, NULL)",
    )
    .await;
    let cfg = env.config_file(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.place\"\n",
    );
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    exec(
        &mut c,
        "INSERT INTO dbo.place VALUES (4, geography::Point(-33.875, 151.25, 4326), geometry::Point(5, 6, 27700)); \
         UPDATE dbo.place SET loc = geography::Point(0, 0, 4269) WHERE id = 3",
    )
    .await;
    let pg = env.pg().await;
    let point = |id: i32| {
        let pg = &pg;
        async move {
            pg.query_opt("SELECT loc, shape FROM public.place WHERE id = $1", &[&id])
                .await
                .unwrap()
                .map(|r| {
                    (
                        r.get::<_, Option<Vec<u8>>>(0),
                        r.get::<_, Option<Vec<u8>>>(1),
                    )
                })
        }
    };
    eventually(
        "the new point and the update arrive",
        Duration::from_secs(30),
        || async {
            point(4).await.is_some() && point(3).await.is_some_and(|(loc, _)| loc.is_some())
        },
    )
    .await;
    assert_eq!(
        point(1).await.unwrap(),
        (
            Some(ewkb_point(4326, -122.25, 47.5)),
            Some(ewkb_point(0, 3.0, 4.0))
        )
    );
    assert_eq!(
        point(4).await.unwrap(),
        (
            Some(ewkb_point(4326, 151.25, -33.875)),
            Some(ewkb_point(27700, 5.0, 6.0))
        )
    );
    assert_eq!(
        point(3).await.unwrap(),
        (Some(ewkb_point(4269, 0.0, 0.0)), None)
    );
    let (line, polygon) = point(2).await.unwrap();
    let (line, polygon) = (line.unwrap(), polygon.unwrap());
    assert_eq!(
        line[1..9],
        [2, 0, 0, 0x20, 0xe6, 0x10, 0, 0],
        "linestring, SRID 4326"
    );
    assert_eq!(line.len(), 9 + 4 + 2 * 16);
    assert_eq!(
        polygon[1..9],
        [3, 0, 0, 0x20, 0x11, 0x0f, 0, 0],
        "polygon, SRID 3857"
    );
    let types: Vec<String> = pg
        .query(
            "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'place' \
             AND column_name IN ('loc', 'shape')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, ["bytea", "bytea"]);
    // Validation reads both sides the same way: every row is equal.
    cutover_succeeds(&cfg);
    let _ = daemon.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchyid_as_ltree_answers_ancestry_and_postgis_types_hold_the_shapes() {
    let env = Env::new("ltree_gis").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.org (id int NOT NULL PRIMARY KEY, node hierarchyid NULL, \
           loc geography NULL, shape geometry NULL); \
         ALTER TABLE dbo.org ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.org VALUES (1, '/', geography::Point(47.5, -122.25, 4326), geometry::STGeomFromText('POLYGON ((0 0, 4 0, 4 4, 0 0))', 3857)), \
           (2, '/1/', NULL, geometry::STGeomFromText('POINT (3 4)', 0)), (3, '/1/2.5/', NULL, NULL), (4, NULL, NULL, NULL)",
    )
    .await;
    // PostGIS is installed by a superuser (the tests' user is one).
    let pg = env.pg().await;
    pg.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
        .await
        .unwrap();
    let cfg = env.config_file(
        "[mapping.types]\nhierarchyid = \"ltree\"\ngeography = \"geography\"\ngeometry = \"geometry\"\n\
         [replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.org\"\n",
    );
    let text = String::from_utf8_lossy(&replicator(&cfg, &["check"]).stdout).to_string();
    assert!(
        text.contains("column loc becomes PostGIS geography"),
        "{text}"
    );
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    exec(
        &mut c,
        "INSERT INTO dbo.org VALUES (5, '/-1/', geography::Point(-33.875, 151.25, 4326), NULL); \
         UPDATE dbo.org SET node = '/1/3/' WHERE id = 4",
    )
    .await;
    let rows = || async {
        target_rows(
            &pg,
            "public.org",
            &["id", "node::text", "ST_AsEWKT(loc)", "ST_AsEWKT(shape)"],
            "id",
        )
        .await
    };
    eventually("the changes arrive", Duration::from_secs(30), || async {
        rows().await.len() == 5 && rows().await[3][1].is_some()
    })
    .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows().await,
        vec![
            vec![
                s("1"),
                s(""),
                s("SRID=4326;POINT(-122.25 47.5)"),
                s("SRID=3857;POLYGON((0 0,4 0,4 4,0 0))")
            ],
            vec![s("2"), s("1"), None, s("POINT(3 4)")],
            vec![s("3"), s("1.2_5"), None, None],
            vec![s("4"), s("1.3"), None, None],
            vec![s("5"), s("n1"), s("SRID=4326;POINT(151.25 -33.875)"), None],
        ]
    );
    let under: i64 = pg
        .query_one("SELECT count(*) FROM public.org WHERE node <@ '1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(under, 3, "1, 1.2_5 and 1.3 are in the subtree of 1");
    // Validation reads PostGIS's binary form back: equal to what was written.
    cutover_succeeds(&cfg);
    let _ = daemon.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_and_their_defaults_are_carried_and_continue_after_the_source_at_cutover() {
    let env = Env::new("sequences").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE SEQUENCE dbo.ticket_no AS bigint START WITH 1000 INCREMENT BY 10; \
         CREATE SEQUENCE dbo.unused AS int START WITH 5 INCREMENT BY 1 MINVALUE 1 MAXVALUE 100 CYCLE; \
         CREATE TABLE dbo.ticket (id int NOT NULL PRIMARY KEY, \
           no bigint NOT NULL CONSTRAINT df_ticket_no DEFAULT (NEXT VALUE FOR dbo.ticket_no), v nvarchar(10) NULL); \
         ALTER TABLE dbo.ticket ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.ticket (id, v) VALUES (1, N'a'), (2, N'b')",
    )
    .await;
    let cfg = env.config_file(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.ticket\"\n",
    );
    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let pg = env.pg().await;
    let params: Vec<(String, i64, i64, i64, bool)> = pg
        .query(
            "SELECT sequencename::text, start_value, increment_by, max_value, cycle FROM pg_sequences \
             WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        params,
        [
            ("ticket_no".to_string(), 1000, 10, i64::MAX, false),
            ("unused".to_string(), 5, 1, 100, true)
        ]
    );
    let default: String = pg
        .query_one(
            "SELECT column_default::text FROM information_schema.columns \
             WHERE table_name = 'ticket' AND column_name = 'no'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(default.contains("nextval('ticket_no'"), "{default}");
    exec(&mut c, "INSERT INTO dbo.ticket (id, v) VALUES (3, N'c')").await;
    let report = cutover_succeeds(&cfg);
    let _ = daemon.wait();
    assert!(
        report["sequences_synced"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["public.ticket_no", 1020])),
        "{report}"
    );
    // The application's next row on PostgreSQL takes the number after the source's last.
    let no: i64 = pg
        .query_one(
            "INSERT INTO public.ticket (id, v) VALUES (4, 'd') RETURNING no",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(no, 1030);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preserved_case_insensitive_collation_finds_abc_for_abc_and_keeps_keys_unique() {
    let env = Env::new("collation").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.cust (code varchar(10) NOT NULL PRIMARY KEY, \
           name nvarchar(40) NOT NULL CONSTRAINT CK_cust_name CHECK (name LIKE N'[A-Z]%'), qty int NULL); \
         CREATE UNIQUE INDEX UX_cust_name ON dbo.cust (name); \
         ALTER TABLE dbo.cust ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.cust VALUES ('ABC', N'Alpha', 1), ('xyz', N'beta', 2)",
    )
    .await;
    let extra = "[mapping]\ncollation = \"preserve\"\n[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.cust\"\n";
    // check says what the choice means, and what binary would have changed.
    let cfg = env.config_file(extra);
    let out = replicator(&cfg, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("compare case-insensitively (collation replicator_ci_as)"),
        "{text}"
    );
    let binary = env.config_file("[[tables]]\nsource = \"dbo.cust\"\n");
    let out = replicator(&binary, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the primary key (code), unique index UX_cust_name (name) compare case-insensitively on SQL Server"),
        "{text}"
    );
    let d = Daemon::start(env.config(extra));
    d.wait_state(
        &["dbo.cust"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    let found: i64 = pg
        .query_one(
            "SELECT count(*) FROM public.cust WHERE code = 'abc' AND name = 'ALPHA'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1, "'abc' finds 'ABC' as on SQL Server");
    // The key keeps SQL Server's meaning: 'Abc' is the same key as 'ABC'.
    pg.batch_execute("BEGIN; SET LOCAL replicator.writer = 'on'")
        .await
        .unwrap();
    let dup = pg
        .execute("INSERT INTO public.cust VALUES ('Abc', 'Other', 3)", &[])
        .await
        .unwrap_err();
    pg.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(dup.code().map(|c| c.code()), Some("23505"), "{dup}");
    // The CHECK with a LIKE class is created and holds (under COLLATE "default").
    let ck: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.cust'::regclass AND conname = 'ck_cust_name'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ck, 1);
    // Changes stream, keys matched case-insensitively as at the source.
    exec(
        &mut c,
        "UPDATE dbo.cust SET qty = 10 WHERE code = 'abc'; DELETE FROM dbo.cust WHERE code = 'XYZ'",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT code, name, qty FROM dbo.cust",
        "public.cust",
        &["code", "name", "qty"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citext_columns_compare_case_insensitively_and_keep_their_length_limit() {
    let env = Env::new("citext").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.cust (code varchar(10) NOT NULL PRIMARY KEY, \
           name nvarchar(40) NOT NULL, qty int NULL); \
         ALTER TABLE dbo.cust ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.cust VALUES ('ABC', N'Alpha', 1), ('xyz', N'beta', 2)",
    )
    .await;
    let extra = "[mapping]\ncollation = \"citext\"\n[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.cust\"\n";
    let cfg = env.config_file(extra);
    let text = String::from_utf8_lossy(&replicator(&cfg, &["check"]).stdout).to_string();
    assert!(text.contains("columns code, name are citext"), "{text}");
    let d = Daemon::start(env.config(extra));
    d.wait_state(
        &["dbo.cust"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    let pg = env.pg().await;
    let types: Vec<String> = pg
        .query(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.cust'::regclass \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, ["citext", "citext", "integer"]);
    let found: i64 = pg
        .query_one(
            "SELECT count(*) FROM public.cust WHERE code = 'abc' AND name LIKE 'AL%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1, "'abc' finds 'ABC', LIKE too");
    pg.batch_execute("BEGIN; SET LOCAL replicator.writer = 'on'")
        .await
        .unwrap();
    let dup = pg
        .execute("INSERT INTO public.cust VALUES ('Abc', 'Other', 3)", &[])
        .await
        .unwrap_err();
    pg.batch_execute("ROLLBACK; BEGIN; SET LOCAL replicator.writer = 'on'")
        .await
        .unwrap();
    assert_eq!(dup.code().map(|c| c.code()), Some("23505"), "{dup}");
    let long = pg
        .execute(
            "INSERT INTO public.cust VALUES ('abcdefghijk', 'x', 3)",
            &[],
        )
        .await
        .unwrap_err();
    pg.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        long.code().map(|c| c.code()),
        Some("23514"),
        "varchar(10) keeps its limit"
    );
    d.stop().await.unwrap();
    // A restart takes the citext table as it is, and changes match keys case-insensitively.
    let d = Daemon::start(env.config(extra));
    d.wait_state(
        &["dbo.cust"],
        TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    exec(
        &mut c,
        "UPDATE dbo.cust SET qty = 10 WHERE code = 'abc'; DELETE FROM dbo.cust WHERE code = 'XYZ'; \
         INSERT INTO dbo.cust VALUES ('new', N'Gamma', 5)",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT code, name, qty FROM dbo.cust",
        "public.cust",
        &["code", "name", "qty"],
        Duration::from_secs(30),
    )
    .await;
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_type_whose_name_is_taken_by_another_type_stops_its_table_by_name() {
    let env = Env::new("domain_clash").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TYPE dbo.code_t FROM varchar(5) NOT NULL; \
         CREATE TABLE dbo.item (id int NOT NULL PRIMARY KEY, code code_t); \
         CREATE TABLE dbo.other (id int NOT NULL PRIMARY KEY, code code_t); \
         ALTER TABLE dbo.item ENABLE CHANGE_TRACKING; ALTER TABLE dbo.other ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.item VALUES (1, 'a'); INSERT INTO dbo.other VALUES (1, 'b')",
    )
    .await;
    // A table named like the alias type: its row type holds the name.
    let pg = env.pg().await;
    pg.batch_execute("CREATE TABLE public.code_t (x int)")
        .await
        .unwrap();
    let d = Daemon::start(env.config(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.item\"\n[[tables]]\nsource = \"dbo.other\"\n",
    ));
    d.wait_state(
        &["dbo.item", "dbo.other"],
        replicator::state::TableState::Errored,
        Duration::from_secs(60),
    )
    .await;
    let e = d.table("dbo.item").unwrap().last_error.unwrap();
    assert!(
        e.message
            .contains("type public.code_t exists and is not a domain (alias type of column code)"),
        "{}",
        e.message
    );
    // Nothing was created in its place.
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname IN ('item', 'other') AND relkind = 'r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_column_a_target_holds_as_values_keeps_receiving_them() {
    let env = Env::new("keep_plain").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.line (id int NOT NULL PRIMARY KEY, qty int NOT NULL, price decimal(9,2) NOT NULL, \
           total AS qty * price PERSISTED); \
         ALTER TABLE dbo.line ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.line (id, qty, price) VALUES (1, 2, 1.50)",
    )
    .await;
    let table = "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.line\"\n";
    // Built as values (as a release before generated columns built it).
    let d = Daemon::start(env.config(&format!(
        "[mapping]\ncomputed_columns = \"values\"\n{table}"
    )));
    d.wait_state(
        &["dbo.line"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    // Now with generated columns: the target's plain column keeps getting the source's values.
    let d = Daemon::start(env.config(table));
    d.wait_state(
        &["dbo.line"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    exec(&mut c, "UPDATE dbo.line SET qty = 5 WHERE id = 1; INSERT INTO dbo.line (id, qty, price) VALUES (2, 3, 2.00)").await;
    let pg = env.pg().await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, total FROM dbo.line",
        "public.line",
        &["id", "total"],
        Duration::from_secs(30),
    )
    .await;
    let generated: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.line'::regclass AND attgenerated = 's'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(generated, 0, "the column stays as it was built");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_into_a_column_the_target_generates_stop_the_table_by_name() {
    let env = Env::new("gen_refused").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.line (id int NOT NULL PRIMARY KEY, qty int NOT NULL, total AS qty * 2 PERSISTED); \
         ALTER TABLE dbo.line ENABLE CHANGE_TRACKING; INSERT INTO dbo.line (id, qty) VALUES (1, 2)",
    )
    .await;
    let table = "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.line\"\n";
    let d = Daemon::start(env.config(table));
    d.wait_state(
        &["dbo.line"],
        replicator::state::TableState::Streaming,
        Duration::from_secs(60),
    )
    .await;
    d.stop().await.unwrap();
    let d = Daemon::start(env.config(&format!(
        "[mapping]\ncomputed_columns = \"values\"\n{table}"
    )));
    d.wait_state(
        &["dbo.line"],
        replicator::state::TableState::Errored,
        Duration::from_secs(60),
    )
    .await;
    let e = d.table("dbo.line").unwrap().last_error.unwrap();
    assert!(
        e.message
            .contains("target column public.line.total is generated by PostgreSQL"),
        "{}",
        e.message
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_postgresql_would_refuse_stops_the_table_by_key_or_becomes_null_by_policy() {
    let env = Env::new("badxml").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.doc (id int NOT NULL PRIMARY KEY, x xml NULL); \
         ALTER TABLE dbo.doc ENABLE CHANGE_TRACKING; \
         INSERT INTO dbo.doc VALUES (1, N'<?xml version=\"1.0\"?><a n=\"1\">ok</a>text<b/>'), \
           (2, N'<a><secret>'), (3, NULL)",
    )
    .await;
    let table = "[[tables]]\nsource = \"dbo.doc\"\n";
    let d = Daemon::start(env.config(table));
    d.wait_state(&["dbo.doc"], TableState::Errored, Duration::from_secs(30))
        .await;
    let err = d.table("dbo.doc").unwrap().last_error.unwrap();
    assert!(
        err.message.contains("id=2")
            && err.message.contains("column x")
            && err.message.contains("policies.invalid_xml"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("secret"),
        "no value in the error: {}",
        err.message
    );
    d.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(env.dir.join("state"));
    let pg = env.pg().await;
    pg.batch_execute("DROP SCHEMA IF EXISTS replicator CASCADE; DROP TABLE IF EXISTS public.doc")
        .await
        .unwrap();
    let d = Daemon::start(env.config(&format!(
        "[policies]\ninvalid_xml = \"null\"\n[replication]\npoll_interval = \"50ms\"\n{table}"
    )));
    d.wait_state(&["dbo.doc"], TableState::Streaming, Duration::from_secs(60))
        .await;
    exec(&mut c, "INSERT INTO dbo.doc VALUES (4, N'<a b=1/>')").await;
    eventually("the change arrives", Duration::from_secs(30), || async {
        d.table("dbo.doc")
            .is_some_and(|r| r.losses.iter().any(|l| l.1 == "xml_nulled" && l.2 == 2))
    })
    .await;
    let rows = target_rows(&pg, "public.doc", &["id", "x::text"], "id").await;
    assert_eq!(
        rows,
        vec![
            vec![
                Some("1".into()),
                Some("<?xml version=\"1.0\"?><a n=\"1\">ok</a>text<b/>".into())
            ],
            vec![Some("2".into()), None],
            vec![Some("3".into()), None],
            vec![Some("4".into()), None],
        ]
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_indexes_become_partial_indexes_or_are_reported_with_their_filter() {
    let env = Env::new("filtered").await;
    let mut c = env.tds().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.acct (id int NOT NULL PRIMARY KEY, email nvarchar(100) NULL, \
           status varchar(10) NOT NULL, closed datetime2 NULL, amount decimal(10,2) NOT NULL); \
         CREATE UNIQUE NONCLUSTERED INDEX UX_acct_email ON dbo.acct (email) WHERE email IS NOT NULL; \
         CREATE INDEX IX_acct_open ON dbo.acct (status) INCLUDE (amount) WHERE closed IS NULL AND amount > 0; \
         CREATE INDEX IX_acct_late ON dbo.acct (id) WHERE status > 'm'; \
         ALTER TABLE dbo.acct ENABLE CHANGE_TRACKING",
    )
    .await;
    // The filter is SQL Server's: two NULL emails under a unique index.
    exec(
        &mut c,
        "INSERT INTO dbo.acct VALUES (1, NULL, 'open', NULL, 5), (2, NULL, 'closed', '2020-01-01', 0), \
           (3, N'a@example.com', 'open', NULL, 1)",
    )
    .await;
    let filters = source_rows(
        &mut c,
        "SELECT name, filter_definition FROM sys.indexes \
         WHERE object_id = OBJECT_ID('dbo.acct') AND has_filter = 1 ORDER BY name",
    )
    .await;
    assert_eq!(filters.len(), 3, "{filters:?}");
    assert!(
        filters
            .iter()
            .all(|r| r[1].as_deref().is_some_and(|f| f.starts_with('('))),
        "{filters:?}"
    );
    let cfg = env.config_file(
        "[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.acct\"\n",
    );
    let dir = env.dir.join("assessment");
    let out = replicator(&cfg, &["schema", "--report", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let fate = |name: &str| {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["object"].as_str() == Some(&format!("index {name}")))
            .map(|o| {
                (
                    o["fate"].as_str().unwrap().to_string(),
                    o["detail"].to_string(),
                )
            })
    };
    assert_eq!(
        fate("UX_acct_email").map(|f| f.0).as_deref(),
        Some("translated")
    );
    assert_eq!(
        fate("IX_acct_open").map(|f| f.0).as_deref(),
        Some("translated")
    );
    let late = fate("IX_acct_late").expect("the untranslated filter is reported");
    assert_eq!(late.0, "by_hand", "{late:?}");
    assert!(
        late.1.contains("status"),
        "the filter's text is named: {late:?}"
    );

    let mut daemon = spawn_daemon(&env, &cfg);
    wait_all_streaming(&cfg, 1).await;
    let pg = env.pg().await;
    let defs: Vec<String> = pg
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'acct' \
             AND indexdef LIKE '% WHERE %' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(defs.len(), 2, "{defs:?}");
    assert!(
        defs.iter()
            .any(|d| d.starts_with("CREATE UNIQUE INDEX") && d.contains("(email IS NOT NULL)")),
        "{defs:?}"
    );
    assert!(
        defs.iter()
            .any(|d| d.contains("INCLUDE (amount)") && d.contains("closed IS NULL")),
        "{defs:?}"
    );
    // The partial index behaves as the filtered one: NULLs repeat, an email does not.
    exec(
        &mut c,
        "INSERT INTO dbo.acct VALUES (4, NULL, 'open', NULL, 2)",
    )
    .await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id, email FROM dbo.acct",
        "public.acct",
        &["id", "email"],
        Duration::from_secs(30),
    )
    .await;
    pg.batch_execute("BEGIN; SET LOCAL replicator.writer = 'on'")
        .await
        .unwrap();
    let dup = pg
        .execute(
            "INSERT INTO public.acct VALUES (5, 'a@example.com', 'open', NULL, 1)",
            &[],
        )
        .await
        .expect_err("a second address is refused");
    assert_eq!(dup.code().map(|c| c.code()), Some("23505"), "{dup}");
    pg.batch_execute("ROLLBACK").await.unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
}
