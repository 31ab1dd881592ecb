//! `mssql-sim`: runs the SQL Server simulator.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mssql-sim",
    about = "A SQL Server simulator that speaks TDS and runs on PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a database (if missing) and fill the sample schema in bulk.
    Seed {
        /// Simulator address.
        #[arg(long, default_value = "127.0.0.1:14330")]
        server: std::net::SocketAddr,
        /// Database to create and fill.
        #[arg(long, default_value = "shop")]
        database: String,
        /// Orders to create (customers, products and lines follow in proportion).
        #[arg(long, default_value_t = 100_000)]
        rows: i64,
        /// Password of `sa` (or set MSSQL_SIM_SA_PASSWORD).
        #[arg(long, env = "MSSQL_SIM_SA_PASSWORD", hide_env_values = true)]
        sa_password: String,
    },
    /// Drive DML on the sample schema through TDS at a target rate, then report what was done.
    Load {
        /// Simulator (or SQL Server) address.
        #[arg(long, default_value = "127.0.0.1:14330")]
        server: std::net::SocketAddr,
        /// Database with the sample schema.
        #[arg(long, default_value = "shop")]
        database: String,
        /// Changes per second over all connections.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// How long to run ("30s", "5m").
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Concurrent connections.
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Seed of the pseudo-random workload.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Password of `sa` (or set MSSQL_SIM_SA_PASSWORD).
        #[arg(long, env = "MSSQL_SIM_SA_PASSWORD", hide_env_values = true)]
        sa_password: String,
    },
    /// Run T-SQL script files batch by batch (split on GO lines, as sqlcmd does); failures are
    /// printed with their line numbers, and the exit code is 1 when a batch failed.
    Script {
        /// Simulator (or SQL Server) address.
        #[arg(long, default_value = "127.0.0.1:14330")]
        server: std::net::SocketAddr,
        /// Database to start in (created when missing); scripts may CREATE and USE their own.
        #[arg(long)]
        database: Option<String>,
        /// Password of `sa` (or set MSSQL_SIM_SA_PASSWORD).
        #[arg(long, env = "MSSQL_SIM_SA_PASSWORD", hide_env_values = true)]
        sa_password: String,
        /// Script files (UTF-8, or UTF-16 with a byte order mark).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Serve TDS clients.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:14330")]
        listen: std::net::SocketAddr,
        /// The backing PostgreSQL database (becomes `master`).
        #[arg(long)]
        backing: String,
        /// How often Change Tracking cleanup applies each database's retention ("30s", "5m").
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ct_cleanup_interval: std::time::Duration,
        /// How often the CDC capture job runs ("5s" as SQL Server's default).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        cdc_polling_interval: std::time::Duration,
        /// Password of the `sa` login (or set MSSQL_SIM_SA_PASSWORD).
        #[arg(long, env = "MSSQL_SIM_SA_PASSWORD", hide_env_values = true)]
        sa_password: String,
        /// Offer TLS inside PRELOGIN with this PEM certificate chain (needs --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Refuse clients that do not support encryption (as Force Encryption does).
        #[arg(long, requires = "tls_cert")]
        tls_required: bool,
        /// Accept Windows authentication (NTLM) for this `DOMAIN\user`; its password comes
        /// from MSSQL_SIM_NTLM_PASSWORD.
        #[arg(long)]
        ntlm_user: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tiberius=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Seed {
            server,
            database,
            rows,
            sa_password,
        } => {
            let t = std::time::Instant::now();
            match mssql_sim::workload::seed_database(server, &sa_password, &database, rows).await {
                Ok(n) => {
                    let secs = t.elapsed().as_secs_f64();
                    println!(
                        "seeded {database}: {n} rows in {secs:.1} s ({:.0} rows/s)",
                        n as f64 / secs
                    );
                }
                Err(e) => {
                    eprintln!("mssql-sim seed: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Load {
            server,
            database,
            rate,
            duration,
            connections,
            seed,
            sa_password,
        } => {
            let cfg = mssql_sim::workload::load::LoadConfig {
                server,
                sa_password,
                database,
                rate,
                duration,
                connections,
                seed,
            };
            let t = std::time::Instant::now();
            match mssql_sim::workload::load::run(cfg).await {
                Ok(report) => {
                    let total: u64 = report.values().sum();
                    for (what, n) in &report {
                        println!("{what:<24} {n}");
                    }
                    println!(
                        "total {total} changes in {:.1} s ({:.0} changes/s)",
                        t.elapsed().as_secs_f64(),
                        total as f64 / t.elapsed().as_secs_f64()
                    );
                }
                Err(e) => {
                    eprintln!("mssql-sim load: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Script {
            server,
            database,
            sa_password,
            files,
        } => {
            match mssql_sim::script::run(server, &sa_password, database.as_deref(), &files).await {
                Ok(report) => {
                    for f in &report.failures {
                        println!("{}:{}: {}", f.file, f.line, f.error);
                    }
                    println!(
                        "{} batches, {} failed",
                        report.batches,
                        report.failures.len()
                    );
                    if !report.failures.is_empty() {
                        std::process::exit(1);
                    }
                }
                Err(e) => {
                    eprintln!("mssql-sim script: {e}");
                    std::process::exit(2);
                }
            }
        }
        Command::Serve {
            listen,
            backing,
            sa_password,
            ct_cleanup_interval,
            cdc_polling_interval,
            tls_cert,
            tls_key,
            tls_required,
            ntlm_user,
        } => {
            let ntlm = match ntlm_user {
                None => None,
                Some(u) => {
                    let password = std::env::var("MSSQL_SIM_NTLM_PASSWORD").unwrap_or_default();
                    if password.is_empty() {
                        eprintln!("mssql-sim: --ntlm-user needs MSSQL_SIM_NTLM_PASSWORD");
                        std::process::exit(2);
                    }
                    match mssql_sim::tds::ntlm::NtlmUser::parse(&u, password) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            eprintln!("mssql-sim: --ntlm-user: {e}");
                            std::process::exit(2);
                        }
                    }
                }
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert_pem), Some(key_pem)) => Some(mssql_sim::server::SimTls {
                    cert_pem,
                    key_pem,
                    required: tls_required,
                }),
                _ => None,
            };
            let cfg = mssql_sim::server::SimConfig {
                ct_cleanup_interval,
                cdc_polling_interval,
                tls,
                ntlm,
                ..mssql_sim::server::SimConfig::new(backing, sa_password)
            };
            let server = match mssql_sim::server::start(cfg, listen).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("mssql-sim: {e}");
                    std::process::exit(1);
                }
            };
            eprintln!("mssql-sim: listening on {}", server.addr);
            let _ = tokio::signal::ctrl_c().await;
            server.stop().await;
        }
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration like 500ms, 30s or 5m: {e}"))
}
