//! How the replicator connects. TLS on both connections: the simulator offers TLS inside PRELOGIN
//! with a test certificate, the target is a throwaway cluster that accepts TLS only; wrong CAs are
//! refused with errors that say so, and every replicator session on the target is encrypted.
//! Windows authentication: NTLM to a simulator that accepts one domain user.

use crate::common::*;
use mssql_sim::server::SimTls;
use mssql_sim::tds::ntlm::NtlmUser;
use replicator::config;
use replicator::state::TableState;
use std::time::Duration;
use testkit::certs::TestCerts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_runs_over_verified_tls_on_both_sides_and_wrong_cas_are_refused() {
    let dir = std::env::temp_dir().join(format!("replicator-tls-{}", std::process::id()));
    let sim_certs = TestCerts::generate(&dir.join("sim"), "sim").unwrap();
    let other = TestCerts::generate(&dir.join("other"), "other").unwrap();
    let (cert_pem, key_pem) = (sim_certs.cert_pem.clone(), sim_certs.key_pem.clone());
    let env = Env::with_sim("tls", move |c| {
        c.tls = Some(SimTls {
            cert_pem,
            key_pem,
            required: false,
        })
    })
    .await;
    let (pg, pg_certs) = tokio::task::spawn_blocking(testkit::start_tls_cluster)
        .await
        .unwrap()
        .expect("a TLS-only throwaway cluster");
    let target_url = format!("postgres://{}@127.0.0.1:{}/postgres", pg.user, pg.port);
    let text = |source_ca: &std::path::Path, sslmode: &str, target_ca: &std::path::Path| {
        env.config_text("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n")
            .replace(
                "tls = \"disable\"",
                &format!("tls = \"require\"\nca_file = \"{}\"", source_ca.display()),
            )
            .replace(
                &format!("url = \"{}\"", env.target_url),
                &format!(
                    "url = \"{target_url}?sslmode={sslmode}\"\nca_file = \"{}\"",
                    target_ca.display()
                ),
            )
    };
    let good = config::parse(
        &text(&sim_certs.ca_pem, "verify-full", &pg_certs.ca_pem),
        &TestEnv::default(),
    )
    .unwrap();
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(100) NULL); ALTER TABLE dbo.t ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.t VALUES (1, N'one'), (2, N'two')").await;
    let d = Daemon::start(good.clone());
    d.wait_state(&["dbo.t"], TableState::Streaming, Duration::from_secs(60))
        .await;
    exec(&mut c, "INSERT INTO dbo.t VALUES (3, REPLICATE(N'x', 100))").await;
    let target = replicator::sink::connect(&good.target).await.unwrap();
    eventually(
        "the change arrives over TLS",
        Duration::from_secs(30),
        || {
            let target = &target;
            async move {
                target
                    .query_one("SELECT count(*) FROM public.t", &[])
                    .await
                    .map(|r| r.get::<_, i64>(0) == 3)
                    .unwrap_or(false)
            }
        },
    )
    .await;
    // Every replicator session on the target is encrypted (the cluster refuses plaintext anyway).
    let (sessions, all_tls): (i64, Option<bool>) = {
        let r = target
            .query_one(
                "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'replicator'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(sessions >= 2, "daemon sessions and this one: {sessions}");
    assert_eq!(all_tls, Some(true));
    d.stop().await.unwrap();

    // A source certificate from an untrusted CA, and a target one: refused, saying why.
    let bad_source = config::parse(
        &text(&other.ca_pem, "verify-full", &pg_certs.ca_pem),
        &TestEnv::default(),
    )
    .unwrap();
    let Err(err) = replicator::source::connect(&bad_source.source).await else {
        panic!("an untrusted source certificate must be refused");
    };
    // Not retried as if the network were down: a certificate stays wrong.
    assert_eq!(err.kind(), replicator::error::ErrorKind::Fatal, "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("source.ca_file")));
    let e = err.to_string();
    assert!(
        e.contains("connect to SQL Server") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
    // trust_server_certificate takes any certificate (and says so in the docs).
    let mut trusting = bad_source.source.clone();
    trusting.ca_file = None;
    trusting.trust_server_certificate = true;
    replicator::source::connect(&trusting)
        .await
        .expect("trust_server_certificate connects");
    for mode in ["verify-ca", "verify-full", "require"] {
        let bad_target = config::parse(
            &text(&sim_certs.ca_pem, mode, &other.ca_pem),
            &TestEnv::default(),
        )
        .unwrap();
        let Err(err) = replicator::sink::connect(&bad_target.target).await else {
            panic!("sslmode={mode}: an untrusted target certificate must be refused");
        };
        assert_eq!(err.kind(), replicator::error::ErrorKind::Fatal, "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("target.ca_file")));
        let e = err.to_string();
        assert!(
            e.contains("connect to PostgreSQL") && e.to_lowercase().contains("certificate"),
            "sslmode={mode} with another CA: {e}"
        );
    }
    // Without a CA, `require` encrypts without checking (libpq's meaning); `disable` is refused
    // by a server that only takes TLS: nothing is silently downgraded.
    let mut no_ca = good.target.clone();
    no_ca.ca_file = None;
    no_ca.ssl_mode = replicator::config::PgSslMode::Require;
    let c2 = replicator::sink::connect(&no_ca).await.unwrap();
    let ssl: bool = c2
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    no_ca.ssl_mode = replicator::config::PgSslMode::Disable;
    assert!(replicator::sink::connect(&no_ca).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_authentication_replicates_and_a_wrong_password_stops_with_a_hint() {
    const NTLM_PASSWORD: &str = "Dom41n-Secret";
    let env = Env::with_sim("ntlm", |c| {
        c.ntlm = Some(NtlmUser::parse("CORP\\svc_replicator", NTLM_PASSWORD.into()).unwrap())
    })
    .await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.w (id int NOT NULL PRIMARY KEY, v int NOT NULL); ALTER TABLE dbo.w ENABLE CHANGE_TRACKING").await;
    exec(&mut c, "INSERT INTO dbo.w VALUES (1, 1)").await;
    let text = env
        .config_text("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.w\"\n")
        .replace(
            "user = \"sa\"\npassword_env = \"TEST_MSSQL_PASSWORD\"",
            "auth = \"windows\"\nuser = 'CORP\\svc_replicator'\npassword_env = \"TEST_NTLM_PASSWORD\"",
        );
    assert!(text.contains("auth = \"windows\""));
    let secrets = |pw: &str| {
        TestEnv(
            [("TEST_NTLM_PASSWORD".to_string(), pw.to_string())]
                .into_iter()
                .collect(),
        )
    };
    let cfg = config::parse(&text, &secrets(NTLM_PASSWORD)).unwrap();
    let d = Daemon::start(cfg);
    d.wait_state(&["dbo.w"], TableState::Streaming, Duration::from_secs(60))
        .await;
    exec(&mut c, "INSERT INTO dbo.w VALUES (2, 2)").await;
    let pg = env.pg().await;
    eventually("the change arrives", Duration::from_secs(30), || {
        let pg = &pg;
        async move {
            pg.query_one("SELECT count(*) FROM public.w", &[])
                .await
                .map(|r| r.get::<_, i64>(0) == 2)
                .unwrap_or(false)
        }
    })
    .await;
    d.stop().await.unwrap();
    let bad = config::parse(&text, &secrets("not-the-password")).unwrap();
    let Err(err) = replicator::source::connect(&bad.source).await else {
        panic!("a wrong Windows password must be refused");
    };
    assert_eq!(err.kind(), replicator::error::ErrorKind::Fatal, "{err}");
    assert!(
        err.hint().is_some_and(|h| h.contains("source.user")),
        "{err}"
    );
    let shown = format!("{err} {:?}", err.hint());
    assert!(
        shown.contains("CORP\\svc_replicator") && !shown.contains("not-the-password"),
        "{shown}"
    );
    // A Windows user without its domain is a configuration error that names the key.
    let no_domain = text.replace("'CORP\\svc_replicator'", "'svc_replicator'");
    let e = config::parse(&no_domain, &secrets(NTLM_PASSWORD))
        .unwrap_err()
        .to_string();
    assert!(e.contains("source.user") && e.contains("DOMAIN"), "{e}");
}
