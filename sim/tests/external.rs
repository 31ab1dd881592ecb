//! Clients nobody here wrote: FreeTDS `tsql` and python-tds. `.ci/run` installs both.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test]
async fn freetds_tsql_creates_inserts_and_reads() {
    let s = sim("tsql").await;
    let port = s.addr.port().to_string();
    let script =
        "CREATE TABLE dbo.ft (id int PRIMARY KEY, name nvarchar(20), price decimal(10,2))\ngo\n\
                  INSERT INTO dbo.ft VALUES (1, N'caf\u{e9}', 12.50), (2, NULL, -1.25)\ngo\n\
                  SELECT id, name, price FROM dbo.ft ORDER BY id\ngo\n";
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("tsql")
            .args([
                "-H",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "sa",
                "-P",
                SA_PASSWORD,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "FreeTDS tsql must be installed (apt-get install freetds-bin; .ci/run does it)",
            );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
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
        stdout.contains("python-tds ok"),
        "python-tds must be installed (pip install python-tds; .ci/run does it)\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
