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
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            backing,
            sa_password,
            ct_cleanup_interval,
            cdc_polling_interval,
        } => {
            let cfg = mssql_sim::server::SimConfig {
                ct_cleanup_interval,
                cdc_polling_interval,
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
