//! The sample database: related tables covering SQL Server's types, identity, a composite key
//! and hostile identifiers, filled in bulk.
//!
//! Contract: [`SCHEMA`] is T-SQL run through the simulator (so the catalog is exact);
//! [`fill_sql`] is PostgreSQL run on the database's backing connection in one transaction, with
//! triggers bypassed and every value already in its stored (canonical) form, so the result is
//! what the same rows inserted through T-SQL would be. Deterministic for a given row count.

/// The sample schema, in T-SQL.
pub const SCHEMA: &str = r#"
CREATE TABLE dbo.customers (
    id int IDENTITY(1,1) NOT NULL PRIMARY KEY,
    name nvarchar(100) NOT NULL,
    email varchar(200) NULL,
    created datetime2 NOT NULL DEFAULT SYSDATETIME(),
    vip bit NOT NULL DEFAULT 0,
    balance money NULL,
    rowguid uniqueidentifier NOT NULL DEFAULT NEWID()
);
CREATE TABLE dbo.products (
    sku varchar(20) NOT NULL PRIMARY KEY,
    title nvarchar(200) NOT NULL,
    price decimal(18,2) NOT NULL,
    weight real NULL,
    photo varbinary(max) NULL,
    launched date NULL
);
CREATE TABLE dbo.orders (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    customer_id int NOT NULL CONSTRAINT FK_orders_customers REFERENCES dbo.customers (id),
    ordered_at datetime NOT NULL,
    status nvarchar(20) NOT NULL,
    total decimal(38,4) NOT NULL,
    note nvarchar(max) NULL,
    shipped datetimeoffset(3) NULL
);
CREATE TABLE dbo.order_lines (
    order_id bigint NOT NULL CONSTRAINT FK_lines_orders REFERENCES dbo.orders (id),
    line_no smallint NOT NULL,
    sku varchar(20) NOT NULL CONSTRAINT FK_lines_products REFERENCES dbo.products (sku),
    qty tinyint NOT NULL,
    unit_price smallmoney NOT NULL,
    CONSTRAINT PK_order_lines PRIMARY KEY (order_id, line_no)
);
CREATE TABLE dbo.[Odd "Names" x]]y] (
    [Key Id] int NOT NULL PRIMARY KEY,
    [naïve column] nvarchar(50) NULL,
    [a"b] float NULL,
    [select] time(7) NULL,
    [bytes] binary(8) NULL,
    [big] decimal(38,0) NULL,
    [when] smalldatetime NULL,
    [stamp] datetime2(7) NULL
);
CREATE INDEX IX_orders_customer ON dbo.orders (customer_id);
"#;

/// The tables of the sample schema, as `schema.table` (T-SQL names).
pub const TABLES: &[&str] = &[
    "dbo.customers",
    "dbo.products",
    "dbo.orders",
    "dbo.order_lines",
    "dbo.[Odd \"Names\" x]]y]",
];

/// Row counts for `rows` orders: (customers, products, orders, order lines, odd names).
pub fn counts(rows: i64) -> (i64, i64, i64, i64, i64) {
    let rows = rows.max(1);
    (
        (rows / 10).max(1),
        (rows / 100).max(10),
        rows,
        rows * 2,
        (rows / 10).max(1),
    )
}

/// PostgreSQL that fills the sample tables with `rows` orders, as independent groups of
/// statements of about equal work (each to run in its own transaction, concurrently: with
/// triggers bypassed the tables do not depend on each other while they fill), then the SQL that
/// completes the seed (identity sequences).
pub fn fill_groups(rows: i64) -> (Vec<String>, String) {
    let sql = fill_sql(rows);
    let mut statements: Vec<String> = Vec::new();
    for part in sql.split("\nINSERT INTO ").skip(1) {
        let body = part.split("\nSELECT setval").next().unwrap_or(part);
        statements.push(format!("INSERT INTO {body}"));
    }
    let finish: String = sql
        .lines()
        .filter(|l| l.starts_with("SELECT setval"))
        .collect::<Vec<_>>()
        .join("\n");
    let prefix = "SET LOCAL session_replication_role = replica;\n";
    // orders alone; order lines with the three small tables.
    let (orders, others): (Vec<String>, Vec<String>) = statements
        .into_iter()
        .partition(|s| s.starts_with("INSERT INTO dbo.orders "));
    (
        vec![
            format!("{prefix}{}", orders.join("\n")),
            format!("{prefix}{}", others.join("\n")),
        ],
        finish,
    )
}

/// PostgreSQL that fills the sample tables with `rows` orders (and proportional others), as one
/// script.
pub fn fill_sql(rows: i64) -> String {
    let (customers, products, orders, _, odd) = counts(rows);
    // Canonical stored forms: datetime2 'YYYY-MM-DD HH:MI:SS.fffffff', time 'HH:MI:SS.fffffff',
    // datetimeoffset with its offset; text without NUL (the escape is exercised elsewhere).
    format!(
        r#"
SET LOCAL session_replication_role = replica;
INSERT INTO dbo.customers (id, name, email, created, vip, balance, rowguid)
SELECT i, 'Customer ' || i || CASE WHEN i % 7 = 0 THEN ' Ünïcödé' ELSE '' END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || i || '@example.com' END,
       to_char(timestamp '2015-01-01' + i * interval '37 minutes', 'YYYY-MM-DD HH24:MI:SS') || '.' || lpad((i * 7919 % 10000000)::text, 7, '0'),
       (i % 2)::smallint,
       CASE WHEN i % 4 = 0 THEN NULL WHEN i = 1 THEN 922337203685477.5807 ELSE round((i % 100000) * 1.2345, 4) END,
       md5('customer' || i)::uuid
FROM generate_series(1, {customers}) AS i;
INSERT INTO dbo.products (sku, title, price, weight, photo, launched)
SELECT 'SKU-' || lpad(i::text, 8, '0'), 'Product ' || i, round((i % 5000) * 3.17 + 0.99, 2),
       CASE WHEN i % 3 = 0 THEN NULL ELSE (i % 1000) / 7.0 END,
       CASE WHEN i % 10 = 0 THEN decode(md5('p' || i) || md5('q' || i), 'hex') ELSE NULL END,
       CASE WHEN i % 6 = 0 THEN NULL ELSE date '2010-01-01' + (i % 4000) END
FROM generate_series(1, {products}) AS i;
INSERT INTO dbo.orders (id, customer_id, ordered_at, status, total, note, shipped)
SELECT i, 1 + (i * 31) % {customers},
       timestamp '2020-01-01' + i * interval '13 seconds' + (i % 300) * interval '10 milliseconds',
       (ARRAY['new','paid','shipped','cancelled'])[1 + i % 4],
       round((i % 1000000) * 0.0123, 4),
       CASE WHEN i % 9 = 0 THEN NULL WHEN i % 9 = 1 THEN '' ELSE 'note for order ' || i END,
       CASE WHEN i % 4 = 2 THEN to_char(timestamp '2020-01-02' + i * interval '13 seconds', 'YYYY-MM-DD HH24:MI:SS') || '.1230000 ' ||
            (ARRAY['+00:00','-05:00','+05:30','+14:00'])[1 + i % 4] ELSE NULL END
FROM generate_series(1, {orders}) AS i;
INSERT INTO dbo.order_lines (order_id, line_no, sku, qty, unit_price)
SELECT o, l, 'SKU-' || lpad((1 + (o * 7 + l) % {products})::text, 8, '0'), (1 + (o + l) % 255)::smallint, round(((o + l) % 2000) * 1.1, 4)
FROM generate_series(1, {orders}) AS o, generate_series(1, 2) AS l;
INSERT INTO dbo."odd ""names"" x]y" ("key id", "naïve column", "a""b", "select", "bytes", "big", "when", "stamp")
SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'naïve ' || i END, CASE WHEN i % 2 = 0 THEN NULL ELSE i / 3.0 END,
       to_char(time '00:00' + (i % 86400) * interval '1 second', 'HH24:MI:SS') || '.' || lpad((i % 10000000)::text, 7, '0'),
       int8send(i), CASE WHEN i = 1 THEN 99999999999999999999999999999999999999 ELSE i::numeric * 1000000007 END,
       timestamp '2000-01-01' + (i % 100000) * interval '1 minute',
       CASE WHEN i % 2 = 0 THEN '9999-12-31 23:59:59.9999999' ELSE '0001-01-01 00:00:00.0000001' END
FROM generate_series(1, {odd}) AS i;
SELECT setval(pg_get_serial_sequence('dbo.customers', 'id'), {customers});
SELECT setval(pg_get_serial_sequence('dbo.orders', 'id'), {orders});
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_table_once() {
        let (groups, finish) = fill_groups(100);
        let all = groups.join("\n");
        for t in [
            "dbo.customers",
            "dbo.products",
            "dbo.orders ",
            "dbo.order_lines",
            "dbo.\"odd",
        ] {
            assert_eq!(all.matches(&format!("INSERT INTO {t}")).count(), 1, "{t}");
        }
        assert!(groups
            .iter()
            .all(|g| g.starts_with("SET LOCAL session_replication_role = replica;")));
        assert_eq!(finish.lines().count(), 2);
    }
}
