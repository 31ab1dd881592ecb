//! `replicator`: see `replicator --help`.

use clap::Parser;

fn main() {
    let cli = replicator::cli::Cli::parse();
    replicator::cli::init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("replicator: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(replicator::cli::main(cli)) {
        Ok(()) => {}
        Err(e) => {
            match e.hint() {
                Some(h) => eprintln!("replicator: {e} (hint: {h})"),
                None => eprintln!("replicator: {e}"),
            }
            std::process::exit(1);
        }
    }
}
