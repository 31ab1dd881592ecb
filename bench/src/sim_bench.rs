//! `sim-bench`: how fast `mssql-sim` streams a large result to a TDS client, next to how fast
//! PostgreSQL itself hands out the same rows (binary COPY TO), and the simulator's peak memory.
//!
//! Runs against a throwaway PostgreSQL cluster (or TEST_DATABASE_URL) and the release
//! `mssql-sim` binary as a child process, so its peak RSS (VmHWM) is its own.

mod common;

use clap::Parser;
use common::{cpu_secs, pg, proc_field, PASSWORD};
use futures_util::{StreamExt, TryStreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

#[derive(Parser)]
#[command(about = "Benchmarks mssql-sim's result streaming against PostgreSQL's binary COPY")]
struct Args {
    /// Rows in the reference table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Path of the mssql-sim binary (default: next to this one).
    #[arg(long)]
    sim: Option<std::path::PathBuf>,
}

/// Counts the bytes a TCP stream receives.
struct Counting {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read
            .fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let backing = testkit::fresh_database("simbench").await;
    let sim_bin = args.sim.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("current exe")
            .with_file_name("mssql-sim")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(&sim_bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--backing",
            &backing,
        ])
        .env("MSSQL_SIM_SA_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (build it with cargo build --release -p mssql-sim)",
                sim_bin.display()
            )
        });
    let pid = child.id();

    let mut cfg = Config::new();
    cfg.host("127.0.0.1");
    cfg.port(port);
    cfg.authentication(AuthMethod::sql_server("sa", PASSWORD));
    cfg.encryption(EncryptionLevel::NotSupported);
    let deadline = Instant::now() + Duration::from_secs(30);
    let tcp = loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(t) => break t,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("mssql-sim did not listen: {e}"),
        }
    };
    tcp.set_nodelay(true).unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let mut tds = Client::connect(
        cfg,
        Counting {
            inner: tcp,
            read: received.clone(),
        }
        .compat_write(),
    )
    .await
    .expect("login");

    // The reference table, declared through T-SQL...
    tds.simple_query(
        "CREATE TABLE dbo.ref (id bigint NOT NULL PRIMARY KEY, a int NOT NULL, b smallint NOT NULL, amount decimal(18,2) NOT NULL, \
         name nvarchar(100) NOT NULL, created datetime2 NOT NULL, updated datetime2 NULL, flag bit NOT NULL, g uniqueidentifier NOT NULL)",
    )
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    // ...and filled in bulk through the backing database (values in the simulator's stored form).
    let load = Instant::now();
    let direct = pg(&backing).await;
    direct
        .batch_execute(&format!(
            "SET session_replication_role = replica; INSERT INTO dbo.ref SELECT i, (i * 7) % 1000000, (i % 30000)::smallint, \
             ((i % 100000) * 1.37)::numeric(18,2), 'customer name ' || i, \
             to_char(timestamp '2020-01-01' + i * interval '1 second', 'YYYY-MM-DD HH24:MI:SS') || '.1234567', \
             CASE WHEN i % 3 = 0 THEN NULL ELSE to_char(timestamp '2021-01-01' + i * interval '1 second', 'YYYY-MM-DD HH24:MI:SS') || '.7654321' END, \
             (i % 2)::smallint, md5(i::text)::uuid FROM generate_series(1, {}) AS i; ANALYZE dbo.ref",
            args.rows
        ))
        .await
        .unwrap();
    eprintln!("loaded {} rows in {:.1?}", args.rows, load.elapsed());

    // The limit: PostgreSQL handing out the same rows in binary COPY format.
    let t = Instant::now();
    let copy = direct
        .copy_out("COPY (SELECT * FROM dbo.ref) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let copy_bytes: usize = copy
        .map(|c| c.map(|b| b.len()).unwrap_or(0))
        .fold(0, |a, b| async move { a + b })
        .await;
    let copy_secs = t.elapsed().as_secs_f64();

    let rss_before = proc_field(pid, "VmRSS:").unwrap_or(0);
    // The backends serving the simulator's sessions (it names its connections).
    let backends: Vec<u32> = direct
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'mssql-sim'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0) as u32)
        .collect();
    let backend_cpu = || backends.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let (cpu_before, client_before, pg_before) =
        (cpu_secs(pid), cpu_secs(std::process::id()), backend_cpu());
    let start_bytes = received.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut stream = tds
        .simple_query("SELECT * FROM dbo.ref")
        .await
        .unwrap()
        .into_row_stream();
    let mut n: i64 = 0;
    while let Some(row) = stream.try_next().await.unwrap() {
        n += 1;
        std::hint::black_box(&row);
    }
    let secs = t.elapsed().as_secs_f64();
    let bytes = received.load(Ordering::Relaxed) - start_bytes;
    assert_eq!(n, args.rows, "every row arrived");
    let hwm = proc_field(pid, "VmHWM:").unwrap_or(0);
    let sim_cpu = cpu_secs(pid) - cpu_before;
    let client_cpu = cpu_secs(std::process::id()) - client_before;
    let pg_cpu = backend_cpu() - pg_before;
    let _ = child.kill();
    let _ = child.wait();

    let sim_rate = n as f64 / secs;
    let copy_rate = args.rows as f64 / copy_secs;
    println!("rows                          {}", args.rows);
    println!(
        "mssql-sim SELECT * over TDS   {:.0} rows/s, {:.1} MB/s ({:.2} s, {} bytes)",
        sim_rate,
        bytes as f64 / secs / 1e6,
        secs,
        bytes
    );
    println!(
        "PostgreSQL binary COPY TO     {:.0} rows/s, {:.1} MB/s ({:.2} s)",
        copy_rate,
        copy_bytes as f64 / copy_secs / 1e6,
        copy_secs
    );
    println!("ratio (sim / COPY)            {:.2}", sim_rate / copy_rate);
    println!(
        "mssql-sim RSS before / peak   {} MiB / {} MiB",
        rss_before / 1024,
        hwm / 1024
    );
    println!(
        "mssql-sim CPU during SELECT   {:.2} s ({:.0} rows per CPU-second)",
        sim_cpu,
        n as f64 / sim_cpu.max(0.001)
    );
    println!("PostgreSQL backend CPU        {:.2} s", pg_cpu);
    println!("tiberius client CPU           {:.2} s", client_cpu);
    println!(
        "CPU used / available          {:.2} / {:.2} core-seconds",
        sim_cpu + pg_cpu + client_cpu,
        secs * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64
    );
}
