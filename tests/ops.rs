//! Operating it through the real binary: where the demo is, the systemd unit, check, notify and SIGHUP,
//! secrets.

use crate::common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn the_product_binary_points_to_the_demo() {
    let out = replicator_command()
        .args(["demo", "--rows", "300"])
        .output()
        .expect("replicator runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scripts/demo.sh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_systemd_unit_verifies_where_systemd_analyze_exists() {
    let Ok(found) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed: unit file not verified here");
        return;
    };
    assert!(found.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/replicator.service"
    ))
    .unwrap();
    let unit = unit.replace(
        "/usr/local/bin/replicator",
        env!("CARGO_BIN_EXE_replicator"),
    );
    for want in [
        "StateDirectory=",
        "RuntimeDirectory=",
        "LoadCredential=",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(want), "{want}");
    }
    let dir = std::env::temp_dir().join(format!("replicator-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("replicator.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_what_would_stop_the_daemon_with_the_fix() {
    let env = Env::new("check").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.good (id int NOT NULL PRIMARY KEY, at datetime2(7) NOT NULL); ALTER TABLE dbo.good ENABLE CHANGE_TRACKING; \
        CREATE TABLE dbo.nopk (a int NULL, b nvarchar(10) NULL); \
        CREATE TABLE dbo.noct (id int NOT NULL PRIMARY KEY); \
        CREATE TABLE dbo.taken (id int NOT NULL PRIMARY KEY); ALTER TABLE dbo.taken ENABLE CHANGE_TRACKING").await;
    let pg = env.pg().await;
    pg.batch_execute("CREATE TABLE public.taken (id int NOT NULL PRIMARY KEY); INSERT INTO public.taken VALUES (1)")
        .await
        .unwrap();
    let cfg = env.config_file("[[tables]]\nsource = \"dbo.*\"\n");
    let out = replicator(&cfg, &["check", "--json"]);
    assert!(!out.status.success(), "errors give exit code 1");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("check --json is JSON");
    let items = report["items"].as_array().unwrap();
    let find = |subject: &str, level: &str| -> Vec<&serde_json::Value> {
        items
            .iter()
            .filter(|i| i["subject"] == subject && i["level"] == level)
            .collect()
    };
    assert!(!find("source", "ok").is_empty(), "{report:#}");
    assert!(
        find("dbo.nopk", "error")
            .iter()
            .any(|i| i["message"].as_str().unwrap().contains("no primary key")),
        "{report:#}"
    );
    assert!(
        find("dbo.noct", "error").iter().any(|i| i["hint"]
            .as_str()
            .unwrap_or("")
            .contains("ALTER TABLE [dbo].[noct] ENABLE CHANGE_TRACKING")),
        "{report:#}"
    );
    assert!(
        find("dbo.taken", "error").iter().any(|i| i["message"]
            .as_str()
            .unwrap()
            .contains("already holds rows")),
        "{report:#}"
    );
    assert!(
        find("dbo.good", "warn")
            .iter()
            .any(|i| i["message"].as_str().unwrap().contains("datetime2(7)")),
        "{report:#}"
    );
    assert!(!find("dbo.good", "ok").is_empty(), "{report:#}");
    // The human form says what to do.
    let human = String::from_utf8_lossy(&replicator(&cfg, &["check"]).stdout).to_string();
    assert!(
        human.contains("hint: ALTER DATABASE CURRENT SET CHANGE_TRACKING"),
        "{human}"
    );
    // Fixed: CT on, the key named, the pre-existing table emptied.
    exec(&mut c, "ALTER TABLE dbo.noct ENABLE CHANGE_TRACKING").await;
    pg.batch_execute("TRUNCATE public.taken").await.unwrap();
    let cfg = env.config_file(
        "[[tables]]\nsource = \"dbo.nopk\"\nkey = [\"a\"]\nchange_source = \"none\"\n[[tables]]\nsource = \"dbo.*\"\n",
    );
    let out = replicator(&cfg, &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A wrong password is an error that does not echo it.
    let text = env.config_text("[[tables]]\nsource = \"dbo.*\"\n").replace(
        "password_env = \"TEST_MSSQL_PASSWORD\"",
        "password_env = \"WRONG_PW\"",
    );
    let bad = env.dir.join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let out = replicator_command()
        .arg("--config")
        .arg(&bad)
        .arg("check")
        .env("WRONG_PW", "Not-The-Secret-42")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("ERROR source"), "{all}");
    assert!(!all.contains("Not-The-Secret-42"), "{all}");
}

/// Waits for a table-state condition in `status --json`.
fn wait_status(cfg: &std::path::Path, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status_json(cfg);
        if f(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_watchdog_and_sighup_reload() {
    let env = Env::new("notify").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.a (id int NOT NULL PRIMARY KEY); ALTER TABLE dbo.a ENABLE CHANGE_TRACKING; \
        CREATE TABLE dbo.b (id int NOT NULL PRIMARY KEY); ALTER TABLE dbo.b ENABLE CHANGE_TRACKING; \
        INSERT INTO dbo.a VALUES (1); INSERT INTO dbo.b VALUES (1), (2)").await;
    let sock_path = env.dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let cfg = env.config_file(&format!(
        "{metrics}[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.a\"\n"
    ));
    let log_path = env.dir.join("daemon.log");
    // systemd names the watched process in WATCHDOG_PID: the shell execs into the daemon.
    let mut daemon = std::process::Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_replicator"))
        .arg("--config")
        .arg(&cfg)
        .args(["--log-format", "json", "run"])
        .env("TEST_MSSQL_PASSWORD", SA_PASSWORD)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen.iter().any(|m| m.contains("READY=1"))
        && seen.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        let n = sock.recv(&mut buf).expect("a notification within 60 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("no READY and WATCHDOG within 60 s: {seen:?}");
        }
    }
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let dog = seen.iter().position(|m| m.contains("WATCHDOG=1")).unwrap();
    assert!(ready < dog, "READY before the first WATCHDOG: {seen:?}");
    wait_status(&cfg, "streaming dbo.a", |s| {
        s["tables"]
            .as_array()
            .is_some_and(|t| t.len() == 1 && t[0]["state"] == "streaming")
    });
    let pid = daemon.id() as i32;
    // An invalid file changes nothing, and the log names the key at fault.
    std::fs::write(&cfg, env.config_text("[[tables]]\nsource = 5\n")).unwrap();
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("the configuration is invalid")
    {
        assert!(Instant::now() < deadline, "the invalid reload is logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(std::fs::read_to_string(&log_path)
        .unwrap()
        .contains("tables"));
    // Reload: a new table is taken in; a changed poll interval is reported as ignored.
    std::fs::write(
        &cfg,
        env.config_text(&format!(
            "{metrics}[replication]\npoll_interval = \"60ms\"\n[[tables]]\nsource = \"dbo.*\"\n"
        )),
    )
    .unwrap();
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_status(&cfg, "streaming dbo.a and dbo.b", |s| {
        s["tables"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["state"] == "streaming"))
    });
    exec(&mut c, "INSERT INTO dbo.b VALUES (3)").await;
    let pg = env.pg().await;
    wait_equal(
        &mut c,
        &pg,
        "SELECT id FROM dbo.b",
        "public.b",
        &["id"],
        Duration::from_secs(30),
    )
    .await;
    // The metrics listener (loopback) reports per table.
    let scrape = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    // The store (which the metrics read) advances right after the window's target commit that
    // wait_equal saw: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape("/metrics");
        if m.contains("replicator_changes_applied_total{table=\"dbo.b\"} 1")
            || Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        m.contains("replicator_table_state{table=\"dbo.b\",state=\"streaming\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("replicator_changes_applied_total{table=\"dbo.b\"} 1"),
        "{m}"
    );
    assert!(m.contains("# TYPE replicator_windows_total counter"), "{m}");
    assert!(scrape("/other").contains(" 404 "));
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = daemon.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0");
    // Logs are one JSON object per line, and say what the reload ignored.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let mut ignored = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("need a restart")
        {
            assert_eq!(v["fields"]["changed"], "replication", "{line}");
            ignored = true;
        }
    }
    assert!(ignored, "the ignored setting is logged: {log}");
}

/// Every file under `dir`, recursively, as bytes.
fn all_files(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_or_file_of_a_whole_run_holds_a_password() {
    let env = Env::new("secrets").await;
    let mut c = env.tds().await;
    exec(&mut c, "CREATE TABLE dbo.s (id int NOT NULL PRIMARY KEY, v nvarchar(20) NULL); ALTER TABLE dbo.s ENABLE CHANGE_TRACKING; \
        INSERT INTO dbo.s VALUES (1, N'a'), (2, N'b')").await;
    const PG_SECRET: &str = "Pg-Secret-Value-93";
    let pg_pw = env.dir.join("pg.pw");
    std::fs::write(&pg_pw, format!("{PG_SECRET}\n")).unwrap();
    let text = env
        .config_text("[replication]\npoll_interval = \"50ms\"\n[[tables]]\nsource = \"dbo.*\"\n")
        .replace(
            "[target]\n",
            &format!("[target]\npassword_file = \"{}\"\n", pg_pw.display()),
        );
    let cfg = env.dir.join("replicator.toml");
    std::fs::write(&cfg, &text).unwrap();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep = |what: &str, o: std::process::Output| {
        outputs.push((format!("{what} stdout"), o.stdout));
        outputs.push((format!("{what} stderr"), o.stderr));
    };
    keep("check", replicator(&cfg, &["check"]));
    let log_path = env.dir.join("daemon.log");
    let mut daemon = replicator_command()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("TEST_MSSQL_PASSWORD", SA_PASSWORD)
        .env("REPLICATOR_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_status(&cfg, "streaming", |s| {
        s["tables"]
            .as_array()
            .is_some_and(|t| t.len() == 1 && t[0]["state"] == "streaming")
    });
    exec(&mut c, "UPDATE dbo.s SET v = N'c' WHERE id = 1").await;
    keep("status", replicator(&cfg, &["status"]));
    keep("status --json", replicator(&cfg, &["status", "--json"]));
    let v = replicator(&cfg, &["validate", "--full"]);
    assert!(
        v.status.success() && String::from_utf8_lossy(&v.stdout).contains("equal"),
        "validate: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    keep("validate", v);
    let cut = replicator(&cfg, &["cutover", "--yes", "--timeout", "60s"]);
    assert!(
        cut.status.success(),
        "cutover: {}",
        String::from_utf8_lossy(&cut.stderr)
    );
    keep("cutover", cut);
    let _ = daemon.wait();
    keep("history", replicator(&cfg, &["history", "--json"]));
    // Failures: a wrong SQL Server password, an unreachable target.
    let wrong = env.dir.join("wrong.toml");
    std::fs::write(
        &wrong,
        text.replace(
            "password_env = \"TEST_MSSQL_PASSWORD\"",
            "password_env = \"WRONG_PW\"",
        ),
    )
    .unwrap();
    for args in [&["check"][..], &["run"][..]] {
        let o = replicator_command()
            .arg("--config")
            .arg(&wrong)
            .args(args)
            .env("WRONG_PW", "Wrong-But-Secret-7")
            .output()
            .unwrap();
        assert!(!o.status.success());
        keep("wrong password", o);
    }
    all_files(&env.dir.join("state"), &mut outputs);
    outputs.push(("daemon log".into(), std::fs::read(&log_path).unwrap()));
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (what, bytes) in &outputs {
        for secret in [SA_PASSWORD, PG_SECRET, "Wrong-But-Secret-7"] {
            assert!(
                !contains(bytes, secret),
                "{what} holds a password: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    assert!(outputs.len() > 15, "every output was looked at");
}
