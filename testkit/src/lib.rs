//! Test harness shared by the workspace's tests.
//!
//! Contract:
//! - [`pg`] returns the one PostgreSQL server of this test process: `TEST_DATABASE_URL` when set,
//!   otherwise a throwaway cluster (initdb in a temp dir, a free port, 127.0.0.1 only, fsync off)
//!   started on first use. When the process runs as root the cluster runs as the unprivileged
//!   `postgres` user, because initdb and postgres refuse root.
//! - The throwaway postmaster dies with the test process, also on panic or SIGKILL: it is started
//!   with `PR_SET_PDEATHSIG` from a thread that lives as long as the process. Data directories
//!   left by killed runs are removed by the next run.
//! - [`fresh_database`] creates a new, empty database for one test and returns its URL.
//! - [`start_tls_cluster`] starts one more throwaway cluster that requires TLS (hostssl only)
//!   with a certificate from [`certs`], for the PostgreSQL TLS tests.

pub mod certs;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// The PostgreSQL server the tests of this process use.
#[derive(Debug, Clone)]
pub struct PgServer {
    /// URL of a superuser connection to the `postgres` database (no password).
    pub admin_url: String,
    /// Host (always loopback for a throwaway cluster).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Superuser name.
    pub user: String,
}

impl PgServer {
    /// URL of database `db` on this server, as the superuser.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, db
        )
    }
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The server for this test process; starts a throwaway cluster on first call unless
/// `TEST_DATABASE_URL` is set. Panics with a clear message when no server can be had.
pub fn pg() -> &'static PgServer {
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => server_from_url(&url),
        _ => start_cluster(None).unwrap_or_else(|e| panic!("throwaway postgres: {e}")),
    })
}

/// A session to `url` (no TLS), its connection driven in the background. Panics naming the
/// URL when it cannot connect (a test or bench harness has nothing better to do).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to postgres at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Creates a new empty database named after `hint` and returns its URL (superuser, no password).
pub async fn fresh_database(hint: &str) -> String {
    let server = pg();
    let n = DB_COUNTER.fetch_add(1, Ordering::SeqCst);
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!("t_{}_{}_{}", clean, std::process::id(), n);
    let (client, conn) = tokio_postgres::connect(&server.admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to test postgres {}: {e}", server.admin_url));
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    drop(client);
    let _ = task.await;
    server.url_for(&name)
}

fn server_from_url(url: &str) -> PgServer {
    let config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is not a postgres URL: {e}"));
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_string();
    PgServer {
        admin_url: url.to_string(),
        host,
        port,
        user,
    }
}

/// Finds a PostgreSQL binary on PATH or in Debian's versioned directories.
pub fn pg_binary(name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct RunAs {
    uid: u32,
    gid: u32,
    name: String,
}

fn unprivileged_user() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the fields at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root and no 'postgres' user exists to run the cluster as \
                    (install the postgresql server package)"
                .into(),
        );
    }
    // SAFETY: pw is non-null and points at a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs {
        uid,
        gid,
        name: "postgres".into(),
    }))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
        return Err(format!(
            "chown {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn root_dir() -> PathBuf {
    std::env::temp_dir().join("replicator-testkit")
}

/// Removes data directories of earlier runs whose process is gone.
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix("pg-").and_then(|p| p.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A throwaway cluster that accepts only TLS connections over TCP (`hostssl ... trust`), with a
/// server certificate for `localhost` and `127.0.0.1` signed by the returned test CA.
pub fn start_tls_cluster() -> Result<(PgServer, certs::TestCerts), String> {
    let dir = root_dir().join(format!(
        "tls-{}-{}",
        std::process::id(),
        free_port().unwrap_or(0)
    ));
    let certs = certs::TestCerts::generate(&dir, "postgres")?;
    let server = start_cluster(Some(&certs))?;
    Ok((server, certs))
}

fn start_cluster(tls: Option<&certs::TestCerts>) -> Result<PgServer, String> {
    let initdb = pg_binary("initdb").ok_or(
        "initdb not found on PATH or in /usr/lib/postgresql/*/bin: install the postgresql server package, or set TEST_DATABASE_URL",
    )?;
    let postgres = initdb.with_file_name("postgres");
    let run_as = unprivileged_user()?;
    let root = root_dir();
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    remove_stale_dirs(&root);
    let dir = root.join(format!(
        "pg-{}-{}",
        std::process::id(),
        free_port().unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // The root folder must be traversable by the cluster's user.
    let _ = std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o1777));
    let user = run_as
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| "postgres".into());
    if let Some(r) = &run_as {
        chown_tree(&dir, r.uid, r.gid)?;
    }
    let data = dir.join("data");
    let mut cmd = Command::new(&initdb);
    cmd.arg("-D")
        .arg(&data)
        .args([
            "-U",
            &user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(r) = &run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    let out = cmd.output().map_err(|e| format!("run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut extra = Vec::new();
    if let Some(t) = tls {
        // The key must belong to the cluster's user and be private to it.
        for (from, name) in [(&t.cert_pem, "server.crt"), (&t.key_pem, "server.key")] {
            let to = data.join(name);
            std::fs::copy(from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|e| format!("chmod {}: {e}", to.display()))?;
            if let Some(r) = &run_as {
                chown_tree(&to, r.uid, r.gid)?;
            }
        }
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| format!("pg_hba.conf: {e}"))?;
        extra.extend(["ssl=on".to_string()]);
    }
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    spawn_postmaster(postgres, data.clone(), dir.clone(), port, run_as, extra)?;
    let server = PgServer {
        admin_url: format!("postgres://{user}@127.0.0.1:{port}/postgres"),
        host: "127.0.0.1".into(),
        port,
        user,
    };
    // Ready when the Unix socket answers (a TLS-only cluster refuses plaintext TCP).
    let socket_url = format!(
        "host={} port={port} user={} dbname=postgres",
        dir.display(),
        server.user
    );
    let d2 = dir.clone();
    std::thread::spawn(move || wait_ready(&socket_url, &d2))
        .join()
        .map_err(|_| "readiness thread panicked".to_string())??;
    Ok(server)
}

/// Starts the postmaster from a thread that never exits, so `PR_SET_PDEATHSIG` (which follows
/// the spawning thread) kills it exactly when this process ends.
fn spawn_postmaster(
    postgres: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    extra: Vec<String>,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("testkit-postmaster".into())
        .spawn(move || {
            let log = std::fs::File::create(dir.join("postgres.log"));
            let mut cmd = Command::new(&postgres);
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", dir.display()))
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ])
                .args(["-c", "max_connections=300", "-c", "shared_buffers=256MB"])
                // The fallback reads the target's changes by logical decoding.
                .args(["-c", "wal_level=logical", "-c", "max_replication_slots=20"])
                .args([
                    "-c",
                    "max_prepared_transactions=0",
                    "-c",
                    "log_min_messages=warning",
                ])
                .stdin(Stdio::null());
            for setting in &extra {
                cmd.arg("-c").arg(setting);
            }
            match log {
                Ok(f) => {
                    let f2 = f.try_clone().ok();
                    cmd.stdout(f);
                    if let Some(f2) = f2 {
                        cmd.stderr(f2);
                    }
                }
                Err(_) => {
                    cmd.stdout(Stdio::null()).stderr(Stdio::null());
                }
            }
            if let Some(r) = &run_as {
                cmd.uid(r.uid).gid(r.gid);
            }
            // SAFETY: prctl is async-signal-safe; it runs after setuid, so it is not cleared.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(()));
                    let _ = child.wait();
                    // Keep this thread alive for the life of the process.
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("start postgres: {e}")));
                }
            }
        })
        .map_err(|e| format!("spawn thread: {e}"))?;
    rx.recv().map_err(|e| format!("postmaster thread: {e}"))?
}

fn wait_ready(url: &str, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    loop {
        let ok = rt.block_on(async {
            match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    let t = tokio::spawn(conn);
                    let r = client.simple_query("SELECT 1").await.is_ok();
                    drop(client);
                    let _ = t.await;
                    r
                }
                Err(_) => false,
            }
        });
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            return Err(format!(
                "postgres did not accept connections within 60s; log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a T-SQL batch to completion on any SQL Server session (the simulator's or another),
/// panicking with the SQL and the server's message on error: the tests' and benches' one way to
/// set up a source.
pub async fn exec<S>(c: &mut tiberius::Client<S>, sql: &str)
where
    S: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin + Send,
{
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
