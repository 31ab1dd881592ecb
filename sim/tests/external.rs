//! Clients nobody here wrote: FreeTDS `tsql` and python-tds. `.ci/run` installs both.

use crate::common::*;
use std::process::Command;

/// Runs a python-tds script; it must print `marker` (the script asserts on its own).
async fn run_python(script: String, marker: &'static str) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(marker),
        "python-tds must be installed (pip install python-tds; .ci/run does it)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn freetds_tsql_creates_inserts_and_reads() {
    let s = sim("tsql").await;
    let port = s.addr.port().to_string();
    let script =
        "CREATE TABLE dbo.ft (id int PRIMARY KEY, name nvarchar(20), price decimal(10,2))\ngo\n\
                  INSERT INTO dbo.ft VALUES (1, N'caf\u{e9}', 12.50), (2, NULL, -1.25)\ngo\n\
                  SELECT id, name, price FROM dbo.ft ORDER BY id\ngo\n";
    let out = run_tsql(
        vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port],
        vec![],
        script.to_string(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1\tcafé\t12.50"),
        "tsql output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2\tNULL\t-1.25"), "tsql output:\n{stdout}");
}

#[tokio::test]
async fn python_tds_round_trips_types_in_a_transaction() {
    let s = sim("pytds").await;
    let script = format!(
        r#"
import pytds, datetime, decimal, uuid
with pytds.connect(server='127.0.0.1', port={port}, user='sa', password='{pw}', database='master', autocommit=False) as conn:
    cur = conn.cursor()
    cur.execute("CREATE TABLE dbo.py (id bigint PRIMARY KEY, d decimal(38,0), dt datetime2(7), g uniqueidentifier, b varbinary(max), n nvarchar(20), f float)")
    conn.commit()
    g = uuid.UUID('0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9')
    cur.execute("INSERT INTO dbo.py VALUES (%s, %s, %s, %s, %s, %s, %s)", (1, decimal.Decimal('-99999999999999999999999999999999999999'), datetime.datetime(2024,1,2,3,4,5,123456), g, pytds.Binary(b'\x00\x01'), 'h\u00e9llo', 1.5))
    conn.rollback()
    cur.execute("SELECT COUNT(*) FROM dbo.py")
    assert cur.fetchone()[0] == 0, 'rollback must undo the insert'
    cur.execute("INSERT INTO dbo.py VALUES (%s, %s, %s, %s, %s, %s, %s)", (1, decimal.Decimal('-99999999999999999999999999999999999999'), datetime.datetime(2024,1,2,3,4,5,123456), g, pytds.Binary(b'\x00\x01'), 'h\u00e9llo', 1.5))
    conn.commit()
    cur.execute("SELECT id, d, dt, g, b, n, f FROM dbo.py")
    row = tuple(cur.fetchone())
    expected = (1, decimal.Decimal('-99999999999999999999999999999999999999'), datetime.datetime(2024,1,2,3,4,5,123456), g, b'\x00\x01', 'h\u00e9llo', 1.5)
    assert row == expected, row
    print('python-tds ok')
"#,
        port = s.addr.port(),
        pw = SA_PASSWORD
    );
    run_python(script, "python-tds ok").await;
}

#[tokio::test]
async fn python_tds_runs_microsofts_change_tracking_sync_pattern() {
    let s = sim("pytds_ct").await;
    let script = format!(
        r#"
import pytds
def sync(cur, last):
    # Microsoft's documented pattern: one SNAPSHOT transaction per synchronisation.
    cur.execute("SET TRANSACTION ISOLATION LEVEL SNAPSHOT")
    cur.execute("BEGIN TRAN")
    cur.execute("SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID('dbo.items'))")
    min_valid = cur.fetchone()[0]
    assert last is None or last >= min_valid, ('must re-initialise', last, min_valid)
    cur.execute("SELECT CHANGE_TRACKING_CURRENT_VERSION()")
    nxt = cur.fetchone()[0]
    cur.execute("SELECT CT.id, CT.SYS_CHANGE_OPERATION, T.name FROM CHANGETABLE(CHANGES dbo.items, %s) AS CT "
                "LEFT OUTER JOIN dbo.items AS T ON T.id = CT.id ORDER BY CT.id", (last if last is not None else 0,))
    rows = [tuple(r) for r in cur.fetchall()]
    cur.execute("COMMIT")
    return nxt, rows

with pytds.connect(server='127.0.0.1', port={port}, user='sa', password='{pw}', database='master', autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("CREATE DATABASE ctdb")
    cur.execute("ALTER DATABASE ctdb SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)")
    cur.execute("ALTER DATABASE ctdb SET ALLOW_SNAPSHOT_ISOLATION ON")
    cur.execute("USE ctdb")
    cur.execute("CREATE TABLE dbo.items (id int PRIMARY KEY, name nvarchar(50))")
    cur.execute("ALTER TABLE dbo.items ENABLE CHANGE_TRACKING")
    cur.execute("INSERT INTO dbo.items VALUES (1, N'one'), (2, N'two')")
    last, rows = sync(cur, None)
    assert rows == [(1, 'I', 'one'), (2, 'I', 'two')], rows
    cur.execute("UPDATE dbo.items SET name = N'uno' WHERE id = 1")
    cur.execute("DELETE FROM dbo.items WHERE id = 2")
    cur.execute("INSERT INTO dbo.items VALUES (3, N'three')")
    last2, rows = sync(cur, last)
    assert rows == [(1, 'U', 'uno'), (2, 'D', None), (3, 'I', 'three')], rows
    assert last2 > last
    print('ct sync ok')
"#,
        port = s.addr.port(),
        pw = SA_PASSWORD
    );
    run_python(script, "ct sync ok").await;
}

/// pgloader 3.6 (Debian's package, over FreeTDS) migrates a database from the simulator with its
/// default settings: its catalog queries are answered and every row arrives. FreeTDS is told to
/// speak TDS 7.4 in UTF-8 (its defaults make pgloader 3.6 fail on any SQL Server: pgloader issue
/// 1068). `.ci/run` installs pgloader.
#[tokio::test]
async fn pgloader_migrates_a_database_from_the_simulator() {
    let s = sim("pgloader").await;
    let chinook = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/chinook/Chinook_SqlServer.sql");
    let report = mssql_sim::script::run(s.addr, SA_PASSWORD, None, &[chinook])
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let target = testkit::fresh_database("pgloader_target").await;
    let dir = std::env::temp_dir().join(format!("pgloader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("freetds.conf");
    std::fs::write(
        &conf,
        "[global]\n\ttds version = 7.4\n\tclient charset = UTF-8\n",
    )
    .unwrap();
    let source = format!(
        "mssql://sa:{SA_PASSWORD}@127.0.0.1:{}/Chinook",
        s.addr.port()
    );
    let out = tokio::task::spawn_blocking({
        let (dir, target) = (dir.clone(), target.clone());
        move || {
            Command::new("pgloader")
                .args(["--no-ssl-cert-verification", &source, &target])
                .env("FREETDSCONF", &conf)
                .current_dir(&dir)
                .output()
        }
    })
    .await
    .unwrap()
    .expect("pgloader must be installed (apt-get install pgloader; .ci/run does it)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgloader failed:\n{log}");
    let pg = testkit::connect(&target).await;
    for (table, n) in [
        ("dbo.track", 3503i64),
        ("dbo.playlisttrack", 8715),
        ("dbo.invoiceline", 2240),
        ("dbo.artist", 275),
    ] {
        let got: i64 = pg
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}\n{log}"))
            .get(0);
        assert_eq!(got, n, "{table}");
    }
    let name: String = pg
        .query_one("SELECT name FROM dbo.artist WHERE artistid = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "AC/DC");
}
