//! `cellar`: the desktop notebook (no arguments or a file) and the headless CLI (`cellar run`).

use std::process::ExitCode;

use cellar::{app, cli};
use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match args.command {
        Some(cli::Command::Run(run)) => cli::run(run),
        Some(cli::Command::Bench(args)) => cellar::bench::run(args),
        Some(cli::Command::Cache(command)) => cellar::cache_cmd::run(command),
        None => {
            if let Err(err) = cellar_engine::memory_budget_from_env() {
                eprintln!("cellar: {err}; running without a memory budget");
            }
            let path = args
                .file
                .unwrap_or_else(|| std::path::PathBuf::from("samples/tour.rhai"));
            match app::open_window(path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("cellar: {err:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
