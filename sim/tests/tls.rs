//! TLS inside PRELOGIN: tiberius (rustls) and FreeTDS `tsql` (GnuTLS) against a simulator given
//! a certificate; refusals when the client cannot or will not trust it.

use crate::common::*;
use mssql_sim::server::{SimServer, SimTls};
use testkit::certs::TestCerts;
use tiberius::EncryptionLevel;

async fn tls_sim(hint: &str, required: bool) -> (SimServer, TestCerts, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sim-tls-{hint}-{}", std::process::id()));
    let certs = TestCerts::generate(&dir, "sim").unwrap();
    let tls = SimTls {
        cert_pem: certs.cert_pem.clone(),
        key_pem: certs.key_pem.clone(),
        required,
    };
    let (server, _) = sim_configured(hint, |c| c.tls = Some(tls)).await;
    (server, certs, dir)
}

async fn connect_tls(
    server: &SimServer,
    level: EncryptionLevel,
    ca: Option<&std::path::Path>,
) -> tiberius::Result<Tds> {
    let mut c = config(server, SA_PASSWORD, None);
    // The test certificate names localhost.
    c.host("localhost");
    c.encryption(level);
    if let Some(ca) = ca {
        c.trust_cert_ca(ca.display().to_string());
    }
    connect_config(c).await
}

#[tokio::test]
async fn tiberius_verifies_the_certificate_and_the_whole_session_is_encrypted() {
    let (s, certs, dir) = tls_sim("tls_tiberius", true).await;
    let mut c = connect_tls(&s, EncryptionLevel::Required, Some(&certs.ca_pem))
        .await
        .expect("TLS connection with the test CA");
    // Bigger than one TLS record and one TDS packet, both ways.
    let big = "x".repeat(100_000);
    c.simple_query(format!(
        "CREATE TABLE dbo.t (id int PRIMARY KEY, v nvarchar(max)); INSERT INTO dbo.t VALUES (1, N'{big}')"
    ))
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    let row = c
        .query("SELECT v FROM dbo.t WHERE id = @P1", &[&1i32])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<&str, _>(0).unwrap().len(), 100_000);
    // A client that cannot encrypt is refused by a server that requires it.
    let plain = connect_tls(&s, EncryptionLevel::NotSupported, None).await;
    assert!(plain.is_err(), "plaintext client must be refused");
    // A client that trusts another CA refuses the server.
    let other = TestCerts::generate(&dir.join("other"), "other").unwrap();
    let Err(err) = connect_tls(&s, EncryptionLevel::Required, Some(&other.ca_pem)).await else {
        panic!("a certificate from an untrusted CA must be refused");
    };
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn without_required_tls_a_plaintext_client_is_still_served() {
    let (s, _certs, _dir) = tls_sim("tls_optional", false).await;
    let mut c = connect_tls(&s, EncryptionLevel::NotSupported, None)
        .await
        .expect("plaintext client");
    let v = rows(&mut c, "SELECT 41 + 1").await;
    assert_eq!(v[0].get::<i32, _>(0), Some(42));
}

#[tokio::test]
async fn freetds_tsql_connects_over_tls_and_checks_the_certificate() {
    let (s, certs, dir) = tls_sim("tls_tsql", true).await;
    let conf = dir.join("freetds.conf");
    let other = TestCerts::generate(&dir.join("other"), "other").unwrap();
    std::fs::write(
        &conf,
        format!(
            "[simtls]\n\thost = localhost\n\tport = {port}\n\ttds version = 7.4\n\tencryption = require\n\tca file = {ca}\n\n\
             [wrongca]\n\thost = localhost\n\tport = {port}\n\ttds version = 7.4\n\tencryption = require\n\tca file = {other}\n",
            port = s.addr.port(),
            ca = certs.ca_pem.display(),
            other = other.ca_pem.display()
        ),
    )
    .unwrap();
    let run = |server: &str| {
        run_tsql(
            vec!["-S".into(), server.into()],
            vec![("FREETDSCONF".into(), conf.display().to_string())],
            "SELECT N'over ' + N'tls'\ngo\n".into(),
        )
    };
    let out = run("simtls").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("over tls"),
        "tsql output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("wrongca").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("over tls"),
        "a certificate from an untrusted CA must be refused:\n{stdout}"
    );
}
