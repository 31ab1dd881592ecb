//! `mssql-sim load`: realistic DML on the sample database through TDS, at a target rate.
//!
//! Each transaction touches several tables: new orders with their lines, updates of status and
//! totals (NULLs and boundary values included), primary key updates of order lines, deletes and
//! delete + re-insert of the same key. The rate is changes per second over all connections;
//! the run stops by itself after the duration and reports what it did per table and operation.

use super::Tds;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Simulator (or SQL Server) address.
    pub server: std::net::SocketAddr,
    /// Password of `sa`.
    pub sa_password: String,
    /// Database holding the sample schema.
    pub database: String,
    /// Target changes per second (all connections together).
    pub rate: u32,
    /// How long to run.
    pub duration: Duration,
    /// Concurrent connections.
    pub connections: usize,
    /// Seed of the pseudo-random choices (same seed, same workload).
    pub seed: u64,
}

/// Counts of changes made, by `table operation`.
pub type LoadReport = BTreeMap<String, u64>;

async fn connect(cfg: &LoadConfig) -> Result<Tds, String> {
    super::connect(cfg.server, &cfg.sa_password, Some(&cfg.database)).await
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One transaction: its T-SQL and the changes it makes.
fn transaction(
    rng: &mut Rng,
    customers: i64,
    products: i64,
    max_order: i64,
) -> (String, Vec<(&'static str, &'static str)>) {
    let mut sql = String::from("SET XACT_ABORT ON; BEGIN TRAN;\n");
    let mut changes = Vec::new();
    let statements = 1 + rng.below(4);
    for _ in 0..statements {
        let order = 1 + rng.below(max_order as u64) as i64;
        match rng.below(10) {
            // 30%: a new order with two lines.
            0..=2 => {
                let customer = 1 + rng.below(customers as u64) as i64;
                let sku = 1 + rng.below(products as u64) as i64;
                let total = if rng.below(20) == 0 {
                    "99999999999999999999999999999999.9999".to_string()
                } else {
                    format!("{}.{:04}", rng.below(100000), rng.below(10000))
                };
                let note = if rng.below(3) == 0 {
                    "NULL".to_string()
                } else {
                    format!("N'load {}'", rng.next() % 1000)
                };
                sql.push_str(&format!(
                    "INSERT INTO dbo.orders (customer_id, ordered_at, status, total, note) VALUES ({customer}, SYSDATETIME(), N'new', {total}, {note});\n\
                     INSERT INTO dbo.order_lines (order_id, line_no, sku, qty, unit_price) VALUES (SCOPE_IDENTITY(), 1, 'SKU-{sku:08}', {}, 1.5), (SCOPE_IDENTITY(), 2, 'SKU-{sku:08}', 255, 214748.3647);\n",
                    1 + rng.below(254)
                ));
                changes.extend([
                    ("orders", "insert"),
                    ("order_lines", "insert"),
                    ("order_lines", "insert"),
                ]);
            }
            // 40%: updates, with NULLs and boundary values.
            3..=6 => {
                let shipped = match rng.below(3) {
                    0 => "NULL".to_string(),
                    1 => "'9999-12-31 23:59:59.999 +14:00'".to_string(),
                    _ => "SYSDATETIMEOFFSET()".to_string(),
                };
                sql.push_str(&format!("UPDATE dbo.orders SET status = N'shipped', shipped = {shipped} WHERE id = {order};\n"));
                changes.push(("orders", "update"));
                if rng.below(2) == 0 {
                    let balance = if rng.below(4) == 0 {
                        "NULL".into()
                    } else {
                        format!("{}.{:04}", rng.below(1000000), rng.below(10000))
                    };
                    sql.push_str(&format!("UPDATE dbo.customers SET balance = {balance}, vip = 1 - vip WHERE id = {};\n", 1 + rng.below(customers as u64)));
                    changes.push(("customers", "update"));
                }
            }
            // 10%: a primary key update of an order line.
            7 => {
                sql.push_str(&format!(
                    "UPDATE dbo.order_lines SET line_no = line_no + 100 WHERE order_id = {order} AND line_no = 2 \
                     AND NOT EXISTS (SELECT 1 FROM dbo.order_lines WHERE order_id = {order} AND line_no = 102);\n"
                ));
                changes.push(("order_lines", "key update"));
            }
            // 10%: delete and re-insert of the same key in one transaction. The re-insert checks for
            // the key: two sessions doing this to the same order would otherwise collide under
            // PostgreSQL's row-lock re-check, where SQL Server's key locks serialise them.
            8 => {
                sql.push_str(&format!(
                    "DELETE FROM dbo.order_lines WHERE order_id = {order} AND line_no = 1;\n\
                     INSERT INTO dbo.order_lines (order_id, line_no, sku, qty, unit_price) SELECT {order}, 1, 'SKU-00000001', 1, 0 WHERE EXISTS (SELECT 1 FROM dbo.orders WHERE id = {order}) \
                     AND NOT EXISTS (SELECT 1 FROM dbo.order_lines WHERE order_id = {order} AND line_no = 1);\n"
                ));
                changes.extend([("order_lines", "delete"), ("order_lines", "re-insert")]);
            }
            // 10%: deletes.
            _ => {
                sql.push_str(&format!(
                    "DELETE FROM dbo.order_lines WHERE order_id = {order} AND line_no > 100;\n"
                ));
                changes.push(("order_lines", "delete"));
            }
        }
    }
    sql.push_str("COMMIT;");
    (sql, changes)
}

/// Runs the workload; returns the changes made by table and operation.
pub async fn run(cfg: LoadConfig) -> Result<LoadReport, String> {
    let mut probe = connect(&cfg).await?;
    let counts = probe
        .simple_query("SELECT (SELECT COUNT(*) FROM dbo.customers), (SELECT COUNT(*) FROM dbo.products), (SELECT MAX(id) FROM dbo.orders)")
        .await
        .map_err(|e| format!("the sample tables are missing (run mssql-sim seed first): {e}"))?
        .into_row()
        .await
        .map_err(|e| format!("reading table sizes: {e}"))?
        .ok_or("no row from the size query")?;
    let customers = counts.get::<i32, _>(0).unwrap_or(1).max(1) as i64;
    let products = counts.get::<i32, _>(1).unwrap_or(1).max(1) as i64;
    let max_order = counts.get::<i64, _>(2).unwrap_or(1).max(1);
    drop(probe);
    let deadline = Instant::now() + cfg.duration;
    let per_conn_rate = (cfg.rate as f64 / cfg.connections.max(1) as f64).max(0.1);
    let mut tasks = Vec::new();
    for n in 0..cfg.connections.max(1) {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await?;
            let mut rng = Rng(cfg.seed.wrapping_add(n as u64 * 0x9E3779B97F4A7C15) | 1);
            let mut report = LoadReport::new();
            let start = Instant::now();
            let mut done: f64 = 0.0;
            while Instant::now() < deadline {
                // Pace to the rate: changes done so far may not run ahead of the schedule.
                let due = start + Duration::from_secs_f64(done / per_conn_rate);
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let (sql, changes) = transaction(&mut rng, customers, products, max_order);
                c.simple_query(sql)
                    .await
                    .map_err(|e| format!("workload transaction: {e}"))?
                    .into_results()
                    .await
                    .map_err(|e| format!("workload transaction: {e}"))?;
                done += changes.len() as f64;
                for (t, op) in changes {
                    *report.entry(format!("{t} {op}")).or_default() += 1;
                }
            }
            Ok::<LoadReport, String>(report)
        }));
    }
    let mut total = LoadReport::new();
    for t in tasks {
        let r = t.await.map_err(|e| format!("workload task: {e}"))??;
        for (k, v) in r {
            *total.entry(k).or_default() += v;
        }
    }
    Ok(total)
}
