use super::*;
use crate::tsql::parse::{parse_batch, Stmt};

fn rw(sql: &str, ctx: &Context) -> String {
    let mut stmts = parse_batch(sql).unwrap();
    let Stmt::Sql(s) = &mut stmts[0] else {
        panic!("not sql")
    };
    let mut r = Rewriter::new(ctx);
    r.rewrite(s);
    assert!(r.error.is_none(), "{:?}", r.error);
    to_pg_text(&s.to_string()).unwrap()
}

#[test]
fn top_hints_and_names() {
    let ctx = Context::default();
    let s = rw(
        "SELECT TOP 10 [Id], [a\"b] FROM [dbo].[My Table] WITH (NOLOCK) WHERE x = N'it''s'",
        &ctx,
    );
    assert_eq!(
        s,
        "SELECT \"id\", \"a\"\"b\" FROM \"dbo\".\"my table\" WHERE x = 'it''s' LIMIT 10"
    );
}

#[test]
fn variables_and_functions() {
    let mut ctx = Context::default();
    ctx.vars
        .insert("@p1".into(), (TsqlType::BigInt, Value::Int(5)));
    ctx.tables.insert(
        "dbo.t".into(),
        vec![
            ("name".into(), TsqlType::NVarChar(Len::N(10))),
            ("g".into(), TsqlType::UniqueIdentifier),
        ],
    );
    let s = rw("SELECT ISNULL(name, 'x') + 'y', LEN(name) FROM t WHERE id > @P1 AND name LIKE 'a%' ORDER BY g", &ctx);
    assert!(s.contains("(COALESCE(name, 'x') || 'y')"), "{s}");
    assert!(s.contains("id > 5"), "{s}");
    assert!(s.contains("COLLATE _sim.bin ILIKE"), "{s}");
    assert!(s.contains("ORDER BY _sim.guid_key(g)"), "{s}");
}

#[test]
fn unknown_variable_is_error_137() {
    let ctx = Context::default();
    let mut stmts = parse_batch("SELECT @nope").unwrap();
    let Stmt::Sql(s) = &mut stmts[0] else {
        panic!()
    };
    let mut r = Rewriter::new(&ctx);
    r.rewrite(s);
    assert_eq!(r.error.unwrap().number, 137);
}

#[test]
fn select_types_map_around_wildcards() {
    let mut ctx = Context::default();
    ctx.tables
        .insert("dbo.t".into(), vec![("a".into(), TsqlType::Int)]);
    let mut stmts =
        parse_batch("SELECT CAST(1 AS bigint), *, CAST(a AS decimal(5,2)) FROM t").unwrap();
    let Stmt::Sql(s) = &mut stmts[0] else {
        panic!()
    };
    let types = Rewriter::new(&ctx).rewrite(s);
    // 1 + (3 columns from *) + 1 = 5 result columns.
    assert_eq!(types.column(0, 5), Some(TsqlType::BigInt));
    assert_eq!(types.column(1, 5), None);
    assert_eq!(types.column(3, 5), None);
    assert_eq!(
        types.column(4, 5),
        Some(TsqlType::Decimal {
            precision: 5,
            scale: 2,
            numeric: false
        })
    );
}

#[test]
fn joined_update_and_delete() {
    let ctx = Context::default();
    let s = rw(
        "UPDATE t SET a = u.x FROM t JOIN u ON t.id = u.id WHERE u.k = 1",
        &ctx,
    );
    assert_eq!(
        s,
        "UPDATE t SET a = u.x FROM u WHERE (u.k = 1) AND (t.id = u.id)"
    );
    let s = rw(
        "UPDATE x SET a = 1 FROM dbo.t AS x INNER JOIN u ON x.id = u.id",
        &ctx,
    );
    assert_eq!(s, "UPDATE dbo.t AS x SET a = 1 FROM u WHERE x.id = u.id");
    let s = rw(
        "DELETE t FROM t JOIN u ON t.id = u.id WHERE u.gone = 1",
        &ctx,
    );
    assert_eq!(
        s,
        "DELETE FROM t USING u WHERE (u.gone = 1) AND (t.id = u.id)"
    );
    let s = rw("DELETE FROM t WHERE id = 1", &ctx);
    assert_eq!(s, "DELETE FROM t WHERE id = 1");
}

#[test]
fn locking_reads_lock_only_plain_selects() {
    let ctx = Context {
        locking_reads: true,
        ..Default::default()
    };
    assert!(rw("SELECT a FROM t WHERE id = 1", &ctx).ends_with("FOR SHARE"));
    assert!(rw(
        "SELECT TOP 5 a FROM t JOIN u ON t.id = u.id ORDER BY a",
        &ctx
    )
    .ends_with("FOR SHARE"));
    for q in [
        "SELECT COUNT(*) FROM t",
        "SELECT DISTINCT a FROM t",
        "SELECT a FROM t GROUP BY a",
        "SELECT a FROM t WITH (NOLOCK)",
        "SELECT bal FROM acct WITH (NOLOCK) WHERE id = 1",
        "SELECT name FROM sys.tables",
        "SELECT 1",
        "SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t",
    ] {
        assert!(!rw(q, &ctx).contains("FOR SHARE"), "{q}");
    }
    assert!(!rw("SELECT a FROM t", &Context::default()).contains("FOR SHARE"));
}

#[test]
fn window_orderings_follow_sql_server_order() {
    let mut ctx = Context::default();
    ctx.tables.insert(
        "dbo.t".into(),
        vec![("g".into(), TsqlType::UniqueIdentifier)],
    );
    let s = rw(
        "SELECT g, ROW_NUMBER() OVER (ORDER BY g) AS rn FROM t",
        &ctx,
    );
    assert!(s.contains("OVER (ORDER BY _sim.guid_key(g))"), "{s}");
}

#[test]
fn derived_table_columns_are_typed_and_inner_columns_keep_theirs() {
    let mut ctx = Context::default();
    ctx.tables.insert(
        "dbo.keyed".into(),
        vec![
            ("k".into(), TsqlType::VarChar(Len::N(20))),
            ("d".into(), TsqlType::DateTime2(7)),
            ("v".into(), TsqlType::Int),
        ],
    );
    let s = rw(
        "SELECT b, SUM(CAST(SUBSTRING(h, 1, 4) AS bigint)) FROM (SELECT v % 16 AS b, \
         CAST(HASHBYTES('MD5', CAST(v AS binary(4))) AS binary(16)) AS h FROM [dbo].[keyed] \
         WHERE [d] <= CAST('2024-02-29 12:00:00.1244020' AS datetime2(7))) x GROUP BY b",
        &ctx,
    );
    assert!(s.contains("_sim.binary_to_bigint"), "{s}");
    assert!(!s.contains("\"d\" <= _sim.to_datetime2"), "{s}");
}

#[test]
fn spatial_constructors_and_members() {
    let mut ctx = Context::default();
    ctx.tables.insert(
        "dbo.t".into(),
        vec![
            ("id".into(), TsqlType::Int),
            ("g".into(), TsqlType::Geography),
        ],
    );
    let s = rw(
        "INSERT INTO t VALUES (1, geography::Point(47.5, -122.25, 4326))",
        &ctx,
    );
    let mut want = 4326i32.to_le_bytes().to_vec();
    want.extend(crate::value::spatial::point_wkb(-122.25, 47.5));
    let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert!(s.contains(&format!("'\\x{hex}'::bytea")), "{s}");
    let s = rw(
        "SELECT CAST(g.STSrid AS binary(4)) + [g].STAsBinary() FROM t",
        &ctx,
    );
    assert!(s.contains("substring(") && s.contains("get_byte("), "{s}");
    let mut stmts = parse_batch("SELECT geometry::STGeomFromText('POINT (1', 0)").unwrap();
    let Stmt::Sql(st) = &mut stmts[0] else {
        panic!()
    };
    let mut r = Rewriter::new(&ctx);
    r.rewrite(st);
    assert!(
        r.error.as_ref().is_some_and(|e| e.number == 6522),
        "{:?}",
        r.error
    );
}
