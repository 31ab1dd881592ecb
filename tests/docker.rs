//! What of docker/ can run without Docker: the init script against the simulator (with TLS, as
//! SQL Server in the container has it), and the compose file's replicator.toml driving the daemon
//! against it. `.ci/run` also checks that docker/compose.yaml parses (`docker-compose config`).

use crate::common::*;
use mssql_sim::server::{start, SimConfig, SimTls};
use replicator::state::TableState;
use std::time::Duration;
use testkit::certs::TestCerts;

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_init_script_and_replicator_toml_migrate_the_sample_database() {
    let dir = std::env::temp_dir().join(format!("replicator-docker-{}", std::process::id()));
    let certs = TestCerts::generate(&dir, "mssql").unwrap();
    let sim = start(
        SimConfig {
            cdc_polling_interval: Duration::from_millis(100),
            tls: Some(SimTls {
                cert_pem: certs.cert_pem.clone(),
                key_pem: certs.key_pem.clone(),
                required: false,
            }),
            ..SimConfig::new(testkit::fresh_database("docker").await, SA_PASSWORD)
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator starts");
    // sqlcmd's batches: split at lines that say GO.
    let mut c = mssql_sim::workload::connect(sim.addr, SA_PASSWORD, None)
        .await
        .unwrap();
    let script = repo_file("docker/init/01-shop.sql");
    let mut batch = String::new();
    for line in script.lines().chain(std::iter::once("GO")) {
        if line.trim().eq_ignore_ascii_case("GO") {
            if !batch.trim().is_empty() {
                exec(&mut c, &batch).await;
            }
            batch.clear();
        } else {
            batch.push_str(line);
            batch.push('\n');
        }
    }
    let tracked = source_rows(
        &mut c,
        "SELECT (SELECT COUNT(*) FROM sys.change_tracking_tables), (SELECT COUNT(*) FROM cdc.change_tables), \
         (SELECT COUNT(*) FROM dbo.customers), (SELECT is_cdc_enabled FROM sys.databases WHERE name = N'shop')",
    )
    .await;
    assert_eq!(
        tracked[0],
        vec![
            Some("2".to_string()),
            Some("1".to_string()),
            Some("3".to_string()),
            Some("true".to_string())
        ]
    );
    // The compose file's configuration, pointed at this simulator and a throwaway target.
    let target = testkit::fresh_database("docker_target").await;
    let text = repo_file("docker/replicator.toml")
        .replace("host = \"mssql\"", "host = \"127.0.0.1\"")
        .replace("port = 1433", &format!("port = {}", sim.addr.port()))
        .replace(
            "postgres://replicator@postgres:5432/shop?sslmode=prefer",
            &format!("{target}?sslmode=prefer"),
        )
        .replace(
            "/var/lib/replicator",
            &dir.join("state").display().to_string(),
        );
    assert!(text.contains("trust_server_certificate = true") && text.contains("tls = \"require\""));
    let secrets = TestEnv(
        [
            ("MSSQL_PASSWORD".to_string(), SA_PASSWORD.to_string()),
            (
                "PG_PASSWORD".to_string(),
                "unused-by-a-trust-cluster".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    );
    let cfg = replicator::config::parse(&text, &secrets).expect("docker/replicator.toml is valid");
    let d = Daemon::start(cfg);
    d.wait_state(
        &["dbo.customers", "dbo.orders", "dbo.order_events"],
        TableState::Streaming,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(
        d.table("dbo.order_events")
            .unwrap()
            .change_source
            .map(|c| c.label()),
        Some("cdc")
    );
    exec(&mut c, "USE shop; INSERT INTO dbo.order_events VALUES (2, 2, N'shipped'); UPDATE dbo.customers SET email = 'grace@example.com' WHERE id = 2").await;
    let pg = testkit::connect(&target).await;
    eventually("both changes arrive", Duration::from_secs(30), || {
        let pg = &pg;
        async move {
            let r = pg
                .query_one(
                    "SELECT (SELECT count(*) FROM public.order_events), (SELECT email FROM public.customers WHERE id = 2)",
                    &[],
                )
                .await;
            r.map(|r| r.get::<_, i64>(0) == 4 && r.get::<_, Option<String>>(1).as_deref() == Some("grace@example.com"))
                .unwrap_or(false)
        }
    })
    .await;
    d.stop().await.unwrap();
    sim.stop().await;
}
