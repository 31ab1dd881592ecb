//! The sample database and the workload driver, through TCP.

use crate::common::*;

#[tokio::test]
async fn seed_then_load_with_change_tracking() {
    let s = sim("workload").await;
    let total = mssql_sim::workload::seed_database(s.addr, SA_PASSWORD, "shop", 2000)
        .await
        .expect("seed");
    let (customers, products, orders, lines, odd) = mssql_sim::workload::seed::counts(2000);
    assert_eq!(total, customers + products + orders + lines + odd);
    let mut c = connect_with(&s, SA_PASSWORD, Some("shop")).await.unwrap();
    let r = rows(&mut c, "SELECT (SELECT COUNT(*) FROM dbo.customers), (SELECT COUNT(*) FROM dbo.products), (SELECT COUNT(*) FROM dbo.orders), (SELECT COUNT(*) FROM dbo.order_lines), (SELECT COUNT(*) FROM dbo.[Odd \"Names\" x]]y])").await;
    let got: Vec<i64> = (0..5)
        .map(|i| r[0].get::<i32, _>(i).unwrap() as i64)
        .collect();
    assert_eq!(got, vec![customers, products, orders, lines, odd]);
    // Every foreign key holds (the bulk path bypassed triggers, so check it).
    let r = rows(&mut c, "SELECT (SELECT COUNT(*) FROM dbo.orders o LEFT JOIN dbo.customers c ON c.id = o.customer_id WHERE c.id IS NULL), \
                          (SELECT COUNT(*) FROM dbo.order_lines l LEFT JOIN dbo.products p ON p.sku = l.sku WHERE p.sku IS NULL)").await;
    assert_eq!(
        (r[0].get::<i32, _>(0), r[0].get::<i32, _>(1)),
        (Some(0), Some(0))
    );
    // Values are stored as T-SQL would store them: boundary values read back exactly.
    let r = rows(&mut c, "SELECT [stamp], [big], [select] FROM dbo.[Odd \"Names\" x]]y] WHERE [Key Id] IN (1, 2) ORDER BY [Key Id]").await;
    assert_eq!(
        r[0].get::<chrono::NaiveDateTime, _>(0)
            .map(|d| d.to_string()),
        Some("0001-01-01 00:00:00.000000100".into())
    );
    assert_eq!(
        r[1].get::<chrono::NaiveDateTime, _>(0)
            .map(|d| d.to_string()),
        Some("9999-12-31 23:59:59.999999900".into())
    );
    assert_eq!(
        r[0].get::<tiberius::numeric::Numeric, _>(1)
            .map(|n| n.value()),
        Some(99999999999999999999999999999999999999)
    );
    let r = rows(
        &mut c,
        "SELECT CAST(balance AS decimal(19,4)) FROM dbo.customers WHERE id = 1",
    )
    .await;
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(0)
            .map(|d| d.to_string()),
        Some("922337203685477.5807".into())
    );
    // Identity continues after the seeded rows.
    let r = rows(
        &mut c,
        "INSERT INTO dbo.customers (name) VALUES (N'new'); SELECT SCOPE_IDENTITY()",
    )
    .await;
    let _ = r;
    let r = rows(&mut c, "SELECT SCOPE_IDENTITY()").await;
    assert_eq!(
        r[0].get::<rust_decimal::Decimal, _>(0)
            .map(|d| d.to_string()),
        Some((customers + 1).to_string())
    );
    // The workload runs against it, within bounds, and Change Tracking sees its changes.
    exec(&mut c, "ALTER DATABASE shop SET CHANGE_TRACKING = ON; ALTER TABLE dbo.orders ENABLE CHANGE_TRACKING; ALTER TABLE dbo.order_lines ENABLE CHANGE_TRACKING").await;
    let report = mssql_sim::workload::load::run(mssql_sim::workload::load::LoadConfig {
        server: s.addr,
        sa_password: SA_PASSWORD.into(),
        database: "shop".into(),
        rate: 300,
        duration: std::time::Duration::from_secs(2),
        connections: 2,
        seed: 7,
    })
    .await
    .expect("load");
    let total: u64 = report.values().sum();
    assert!(
        total > 50 && total < 2000,
        "about 600 changes at 300/s for 2 s, got {total}: {report:?}"
    );
    assert!(
        report.keys().any(|k| k == "orders insert") && report.keys().any(|k| k.ends_with("update")),
        "{report:?}"
    );
    let r = rows(
        &mut c,
        "SELECT COUNT(*) FROM CHANGETABLE(CHANGES dbo.orders, 0) AS CT",
    )
    .await;
    let ct = r[0].get::<i32, _>(0).unwrap() as u64;
    assert!(
        ct >= *report.get("orders insert").unwrap_or(&0),
        "every inserted order is a change ({ct})"
    );
}
