//! `dialbridge serve`: opens the store, serves HTTP, and shuts down gracefully on SIGINT or
//! SIGTERM (stop accepting, let requests finish, close the store).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dialbridge_api::{AppState, Metrics};

use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = crate::open_store(&config).await?;
    tracing::info!(
        database = %crate::redact_url(&config.database_url),
        migrations = ?store.applied_migrations().await?,
        "database ready"
    );
    let metrics = Arc::new(Metrics::new(config.node_name.as_str()));
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    metrics.start_time_seconds.set(i64::try_from(started).unwrap_or(0));

    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {} (http.listen)", config.http_listen))?;
    tracing::info!(address = %listener.local_addr()?, node = %config.node_name, "listening for HTTP");

    let app = dialbridge_api::router(AppState {
        store: store.clone(),
        metrics,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
