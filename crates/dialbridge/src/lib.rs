//! dialbridge as a library: its configuration and a whole server ([`serve::Server`]), so that
//! tests and the bench can run one in-process; the binary (`main.rs`) adds the operator's tools.

pub mod config;
pub mod log_lines;
pub mod serve;

use anyhow::Context;
use dialbridge_store::{SecretKey, Store};

use crate::config::Config;

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
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
