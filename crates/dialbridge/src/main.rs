//! The `dialbridge` binary: `serve` runs the server; `admin` and `provision` are the
//! operator's tools over the same store.

mod admin;
mod provision;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dialbridge::open_store;
use dialbridge::{config, serve};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "dialbridge",
    version,
    about = "Self-hostable multi-tenant outbound call center"
)]
struct Cli {
    /// TOML configuration file; `DIALBRIDGE_*` environment variables override it.
    #[arg(long, global = true, env = "DIALBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP, SIP and media) until SIGINT or SIGTERM.
    Serve,
    /// Create, change and list enterprises, agents, extensions, trunks, numbers and more.
    Admin(Box<admin::AdminArgs>),
    /// Apply a declarative TOML description of enterprises (idempotent).
    Provision(provision::ProvisionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log_level = match cli.command {
        Command::Serve => config.log_level.clone(),
        _ => "warn".to_owned(),
    };
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(dialbridge::log_lines::OneLinePerEvent::new(std::io::stderr, colours))
        .with_ansi(colours)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::serve_until_signalled(config).await,
            Command::Admin(args) => admin::run(&config, *args).await,
            Command::Provision(args) => provision::run(&config, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
