//! `replicator-demo` (run by `scripts/demo.sh`): a whole migration on this machine, with nothing
//! to configure. A throwaway
//! PostgreSQL cluster (or `--pg-url`), the SQL Server simulator serving a seeded sample database
//! over TCP, the daemon snapshotting and then streaming under a live workload, `status` along
//! the way, and a cutover with its report. Everything is removed at the end.
//!
//! The daemon runs exactly as `replicator run` would, against the simulator's TCP address: no
//! code path of it knows that the source is simulated. It is its own binary so that the product
//! (`replicator`) links no simulator and no test harness.

use clap::Parser;
use replicator::config::{self, Environment};
use replicator::daemon;
use replicator::error::Error;
use replicator::state::{Store, TableState};
use std::time::{Duration, Instant};

fn main() {
    let args = DemoArgs::parse();
    replicator::cli::init_logging(replicator::cli::LogFormat::Text);
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Fatal(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = outcome {
        eprintln!("replicator-demo: {e}");
        std::process::exit(1);
    }
}

/// Options of the demo.
#[derive(Debug, Parser)]
#[command(
    name = "replicator-demo",
    about = "A whole migration on this machine: simulator, throwaway PostgreSQL, snapshot, live changes, cutover"
)]
struct DemoArgs {
    /// Use this PostgreSQL server (a superuser URL) instead of a throwaway cluster; the demo
    /// creates and drops its own databases on it.
    #[arg(long)]
    pg_url: Option<String>,
    /// Orders in the sample database (customers, products and order lines follow).
    #[arg(long, default_value_t = 20_000)]
    rows: i64,
    /// Seconds of live workload while streaming.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Workload changes per second.
    #[arg(long, default_value_t = 300)]
    rate: u32,
}

const SA_PASSWORD: &str = "Demo_pw_1";

struct DemoEnv;

impl Environment for DemoEnv {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "DEMO_MSSQL_PASSWORD" => Some(SA_PASSWORD.into()),
            other => std::env::var(other).ok(),
        }
    }
}

/// Prints `replicator status` as the running daemon sees it.
fn print_status(shared: &daemon::Shared) -> Result<(), Error> {
    let view = daemon::status::DaemonView::of(shared);
    print!(
        "{}",
        daemon::status::render(&daemon::status::build(&shared.store, Some(&view))?)
    );
    Ok(())
}

fn step(msg: &str) {
    println!("\n== {msg}");
}

async fn databases(
    pg_url: &Option<String>,
) -> Result<(String, String, Option<tokio_postgres::Client>), Error> {
    match pg_url {
        None => Ok((
            testkit::fresh_database("demo_sim").await,
            testkit::fresh_database("demo_target").await,
            None,
        )),
        Some(url) => {
            let cfg: tokio_postgres::Config = url
                .parse()
                .map_err(|e| Error::Fatal(format!("--pg-url: {e}")))?;
            let (admin, conn) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Error::Fatal(format!("--pg-url: cannot connect: {e}")))?;
            tokio::spawn(conn);
            let pid = std::process::id();
            let (sim, target) = (
                format!("replicator_demo_sim_{pid}"),
                format!("replicator_demo_target_{pid}"),
            );
            for db in [&sim, &target] {
                admin
                    .batch_execute(&format!("CREATE DATABASE {db}"))
                    .await
                    .map_err(|e| {
                        Error::Fatal(format!("--pg-url: cannot create database {db}: {e}"))
                    })?;
            }
            let with_db = |db: &str| match url.rfind('/') {
                Some(i)
                    if !url[i + 1..].contains('@')
                        && url[..i].contains("://")
                        && url[..i].matches('/').count() >= 2 =>
                {
                    let (base, rest) = url.split_at(i + 1);
                    let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
                    format!("{base}{db}{query}")
                }
                _ => format!("{url}/{db}"),
            };
            Ok((with_db(&sim), with_db(&target), Some(admin)))
        }
    }
}

/// Runs the demo to its end.
async fn run(args: DemoArgs) -> Result<(), Error> {
    let started = Instant::now();
    step("starting PostgreSQL and the SQL Server simulator");
    let (backing, target, admin) = databases(&args.pg_url).await?;
    let sim = mssql_sim::server::start(
        mssql_sim::server::SimConfig::new(backing, SA_PASSWORD),
        "127.0.0.1:0"
            .parse()
            .map_err(|_| Error::Fatal("address".into()))?,
    )
    .await
    .map_err(Error::Fatal)?;
    println!(
        "simulator (TDS 7.4) on {}; target {}",
        sim.addr,
        redact(&target)
    );
    step(&format!("seeding database shop with {} orders", args.rows));
    let n = mssql_sim::workload::seed_database(sim.addr, SA_PASSWORD, "shop", args.rows)
        .await
        .map_err(Error::Fatal)?;
    let mut tds = mssql_sim::workload::connect(sim.addr, SA_PASSWORD, Some("shop"))
        .await
        .map_err(Error::Fatal)?;
    let mut enable = String::from(
        "ALTER DATABASE shop SET ALLOW_SNAPSHOT_ISOLATION ON; ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON);",
    );
    for t in mssql_sim::workload::seed::TABLES {
        if let Some(name) = replicator::model::TableName::parse(t) {
            enable.push_str(&format!(
                " ALTER TABLE {} ENABLE CHANGE_TRACKING;",
                name.tsql()
            ));
        }
    }
    replicator::source::execute(&mut tds, &enable, "enable Change Tracking").await?;
    println!(
        "{n} rows in {} tables; Change Tracking and snapshot isolation on",
        mssql_sim::workload::seed::TABLES.len()
    );

    let dir = std::env::temp_dir().join(format!("replicator-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "[source]\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"shop\"\nuser = \"sa\"\npassword_env = \"DEMO_MSSQL_PASSWORD\"\ntls = \"disable\"\n\
         [target]\nurl = \"{target}\"\n[state]\ndir = \"{d}/state\"\n[control]\nsocket = \"{d}/control.sock\"\n\
         [replication]\npoll_interval = \"100ms\"\nsnapshot_chunk_rows = 20000\n[[tables]]\nsource = \"dbo.*\"\n",
        sim.addr.port(),
        d = dir.display()
    );
    let cfg = config::parse(&text, &DemoEnv)?;
    step("replicator run: schema, snapshot, then Change Tracking");
    let store = Store::open(&cfg.state_dir)?;
    let shared = daemon::shared(cfg.clone(), store);
    replicator::control::serve(shared.clone(), &cfg.control_socket).await?;
    let task = tokio::spawn(daemon::run(shared.clone()));
    let t = Instant::now();
    loop {
        let tables = shared.store.tables()?;
        if !tables.is_empty() && tables.iter().all(|(_, r)| r.state == TableState::Streaming) {
            break;
        }
        if let Some((name, r)) = tables.iter().find(|(_, r)| r.state == TableState::Errored) {
            return Err(Error::Fatal(format!(
                "demo: {name} stopped: {:?}",
                r.last_error
            )));
        }
        if task.is_finished() || t.elapsed() > Duration::from_secs(600) {
            return Err(Error::Fatal("demo: the snapshot did not finish".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("snapshot done in {:.1} s", t.elapsed().as_secs_f64());
    print_status(&shared)?;

    step(&format!(
        "live workload: {} changes/s for {} s while the daemon streams",
        args.rate, args.seconds
    ));
    let load = tokio::spawn(mssql_sim::workload::load::run(
        mssql_sim::workload::load::LoadConfig {
            server: sim.addr,
            sa_password: SA_PASSWORD.into(),
            database: "shop".into(),
            rate: args.rate,
            duration: Duration::from_secs(args.seconds),
            connections: 2,
            seed: 42,
        },
    ));
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        print_status(&shared)?;
    }
    let report = load
        .await
        .map_err(|e| Error::Fatal(e.to_string()))?
        .map_err(Error::Fatal)?;
    println!("workload made {} changes", report.values().sum::<u64>());

    step("replicator cutover --fence-source: every table proven equal while the daemon streams, then the source fenced and only what changed since checked");
    // Cutover talks to the running daemon: it proves each table equal while replication runs,
    // then asks the daemon to stop and takes its store.
    let cutover = tokio::spawn(replicator::cutover::run(cfg, {
        let mut o = replicator::cutover::Options::new(true);
        o.timeout = Duration::from_secs(120);
        o
    }));
    task.await.map_err(|e| Error::Fatal(e.to_string()))??;
    // Every task the daemon started ends before its store is let go (cutover takes it next).
    shared.lifecycle.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), shared.lifecycle.tasks.wait()).await;
    drop(shared);
    let cut = cutover.await.map_err(|e| Error::Fatal(e.to_string()))??;
    print!("{}", cut.render());

    step("cleaning up");
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(admin) = admin {
        let pid = std::process::id();
        for db in [
            format!("replicator_demo_sim_{pid}"),
            format!("replicator_demo_target_{pid}"),
        ] {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
        // The simulator's T-SQL database lives beside its backing database.
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                mssql_sim::server::pg_name_for(&format!("replicator_demo_sim_{pid}"), "shop")
            ))
            .await;
    }
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    if cut.ok {
        Ok(())
    } else {
        Err(Error::Fatal("demo: cutover found differences".into()))
    }
}

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(a)) if a > s => {
            let creds = &url[s + 3..a];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[a..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
