//! The `dialbridge` binary: `serve` runs the server; `admin` and `provision` are the
//! operator's tools over the same store.

mod admin;
mod config;
mod provision;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dialbridge_store::{SecretKey, Store};

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
    Admin(admin::AdminArgs),
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            Command::Serve => serve::run(config).await,
            Command::Admin(args) => admin::run(&config, args).await,
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

/// Creates the data directory when needed, loads (or creates) the secret key, opens and
/// migrates the database.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(open_store_and_key(config).await?.0)
}

/// As [`open_store`], also returning the server's secret key (the SIP registrar signs its
/// nonces with it).
pub async fn open_store_and_key(config: &Config) -> anyhow::Result<(Store, SecretKey)> {
    create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let key = match &config.secret_key {
        Some(key) => key.clone(),
        None => SecretKey::load_or_create(&config.data_dir)?,
    };
    let store = Store::open(&config.store_options(), &key)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&config.database_url)))?;
    Ok((store, key))
}

/// The data directory holds the database and the secret key: owner-only when we create it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
