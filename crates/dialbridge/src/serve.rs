//! A whole server: opens the store, starts the call engine (SIP and media), the push dispatcher
//! and HTTP, and shuts down gracefully when told (the binary: on SIGINT or SIGTERM): stop
//! accepting, let calls end or hang them up after the grace period, close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dialbridge_api::AppState;
use dialbridge_core::Transport;
use dialbridge_engine::{Engine, EngineConfig, RegistrarSettings, SipTransport};
use dialbridge_service::{CallService, Metrics, StoreDirectory};
use dialbridge_store::Store;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// How often the trunks to watch (keepalive, registration) are read from the store again.
const TRUNK_RELOAD: Duration = Duration::from_secs(10);

/// Runs a whole server until `shutdown` resolves, then stops it in order (see [`Server::run`]).
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    Server::start(config).await?.run(shutdown).await
}

/// A server whose store, engine (SIP and media), push dispatcher and HTTP listener are up,
/// with the calls a crash left closed: the binary's `serve`, and tests and the bench in-process.
pub struct Server {
    listener: tokio::net::TcpListener,
    /// HTTPS when the configuration names a certificate.
    tls: Option<dialbridge_http::Tls>,
    app: axum::Router,
    running: Running,
}

/// What [`Server::run`] stops, in order, once HTTP has stopped.
struct Running {
    config: Config,
    store: Store,
    engine: Engine,
    dispatcher: dialbridge_push::Dispatcher,
    calls: CallService,
    /// Cancels the server's own background tasks (gauges, trunk reloading), tracked in
    /// `background`.
    stop: CancellationToken,
    background: TaskTracker,
}

/// How long each step of the shutdown may take beyond what it is given (the calls' grace).
const STEP_WAIT: Duration = Duration::from_secs(15);

impl Server {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let mut config = config;
        fit_to_descriptors(&mut config);
        let (store, key) = crate::open_store_and_key(&config).await?;
        tracing::info!(
            database = %crate::redact_url(&config.database_url),
            migrations = ?store.applied_migrations().await?,
            "database ready"
        );
        // Bound before anything starts: a port in use leaves nothing running.
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen for HTTP on {} (http.listen)", config.http_listen))?;
        let tls = config
            .http_tls
            .as_ref()
            .map(|(cert, key)| dialbridge_http::Tls::from_pem_files(cert, key))
            .transpose()
            .context("cannot serve HTTPS (http.tls_cert, http.tls_key)")?;
        // Loaded before the first call waits for it.
        tokio::task::spawn_blocking(dialbridge_core::destination::load_metadata).await?;
        let metrics = Arc::new(Metrics::new(config.node_name.as_str()));
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        metrics.start_time_seconds.set(i64::try_from(started).unwrap_or(0));

        let engine = Engine::start(
            engine_config(&config, key.bytes()),
            Arc::new(StoreDirectory::new(store.clone())),
        )
        .await
        .with_context(|| format!("cannot start SIP on {} (sip.listen)", config.sip_listen))?;
        tracing::info!(address = %listener.local_addr()?, node = %config.node_name, tls = tls.is_some(), "listening for HTTP");
        let dispatcher =
            dialbridge_push::Dispatcher::start(store.clone(), dialbridge_push::DispatcherSettings::default());
        let recorder = dialbridge_recording::Recorder::start(
            dialbridge_recording::LocalStorage::new(config.data_dir.join("recordings"))
                .context("cannot create the recordings directory (data_dir)")?,
            &dialbridge_recording::RecorderSettings {
                workers: config.recording_workers,
                ..Default::default()
            },
        )
        .context("cannot start the recorder")?;
        let calls = CallService::new(
            store.clone(),
            engine.clone(),
            config.node_name.clone(),
            config.call_heartbeat,
            metrics.clone(),
            dialbridge_service::Recordings {
                recorder,
                public_origin: config.http_public_origin.clone(),
            },
        );
        let stop = CancellationToken::new();
        let background = TaskTracker::new();
        background.spawn(update_gauges(
            engine.clone(),
            calls.clone(),
            metrics.clone(),
            stop.child_token(),
        ));
        background.spawn(calls.clone().watch_trunks(TRUNK_RELOAD, stop.child_token()));
        background.spawn(
            calls
                .clone()
                .run_recording_sweeper(config.retention_sweep, stop.child_token()),
        );
        background.spawn(dialbridge_service::retention::run_sweeper(
            store.clone(),
            config.retention,
            config.retention_sweep,
            stop.child_token(),
        ));
        let app = dialbridge_api::router(
            AppState::new(
                calls.clone(),
                metrics,
                dialbridge_api::live::derive_token_key(key.bytes()),
            )
            .with_public_origin(config.http_public_origin.clone())
            .with_softphone(dialbridge_api::SoftphoneSettings {
                auto_answer: config.softphone_auto_answer,
                ice_servers: ice_servers(&config.softphone_ice_servers, config.softphone_turn.as_ref()),
            }),
        );
        let running = Running {
            config,
            store,
            engine,
            dispatcher,
            calls,
            stop,
            background,
        };
        match running.calls.restore_registrations().await {
            Ok(0) => {}
            Ok(restored) => tracing::info!(
                bindings = restored,
                "phones' registrations taken back from the last run"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registrations kept by the last run: phones must register again")
            }
        }
        if let Err(e) = running.calls.watch_wrapups().await {
            tracing::warn!(error = %e, "cannot read the wrap-ups running: their ends are not told");
        }
        match running.calls.recover().await {
            Ok(0) => {}
            Ok(recovered) => tracing::warn!(calls = recovered, "closed calls left running by the previous run"),
            Err(e) => {
                running.stop().await;
                return Err(anyhow::Error::new(e).context("closing the calls left by the last run"));
            }
        }
        Ok(Self {
            listener,
            tls,
            app,
            running,
        })
    }

    /// Where HTTP listens (the configured address, its port chosen when it was 0).
    pub fn http_address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where SIP listens.
    pub fn sip_address(&self) -> SocketAddr {
        self.running.engine.sip_addr()
    }

    /// Serves until `shutdown` resolves, then stops everything in order ([`Running::stop`]);
    /// also when HTTP failed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let served = dialbridge_http::serve(
            self.listener,
            self.app,
            self.running.config.http_limits.clone(),
            self.tls,
            Arc::new(dialbridge_api::over_long_head),
            shutdown,
        )
        .await
        .context("HTTP server failed");
        self.running.stop().await;
        served
    }
}

impl Running {
    /// In this order, once HTTP takes no more requests: cancels the background tasks and waits
    /// for them; lets live calls end within the grace period, then hangs them up; waits until
    /// their CDRs and pushes are written; stops the engine's trunk tasks and SIP (inside the
    /// engine's shutdown); lets push deliveries in flight finish (the rest stay in the outbox);
    /// closes the store. Every owner of tasks stops the same way: a cancellation token, then a
    /// bounded wait on its task tracker.
    async fn stop(self) {
        self.stop.cancel();
        self.background.close();
        if tokio::time::timeout(STEP_WAIT, self.background.wait()).await.is_err() {
            tracing::warn!("background tasks still running at shutdown");
        }
        self.engine.shutdown(self.config.shutdown_grace).await;
        if !self.calls.calls_closed(STEP_WAIT).await {
            tracing::warn!("calls whose CDR is not written yet at shutdown: the next start closes them");
        }
        self.dispatcher.stop().await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// The caps `auto` stands for, at most.
const AUTO_HTTP_CONNECTIONS: usize = 4096;
const AUTO_SIP_TCP_CONNECTIONS: usize = 2048;

/// Raises the open-file limit to the hard limit (every connection is a descriptor) and fits the
/// connection caps left at `auto` within it: HTTP a third, SIP over TCP a sixth (a connection it
/// serves takes two descriptors), so neither alone can exhaust what the other, media and the
/// database need. A cap set by the operator is kept, with a warning if it is over its share.
fn fit_to_descriptors(config: &mut Config) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            u64::MAX
        }
    };
    let share = |divisor: u64| usize::try_from(limit / divisor).unwrap_or(usize::MAX);
    let caps = [
        (
            "http.max_connections",
            &mut config.http_limits.max_connections,
            AUTO_HTTP_CONNECTIONS,
            share(3),
        ),
        (
            "sip.tcp_max_connections",
            &mut config.sip_tcp_limits.max_connections,
            AUTO_SIP_TCP_CONNECTIONS,
            share(6),
        ),
    ];
    for (key, cap, auto, share) in caps {
        if *cap == usize::MAX {
            *cap = auto.min(share).max(16);
        } else if *cap > share {
            tracing::warn!(
                key,
                cap = *cap,
                share,
                open_files = limit,
                "a connection cap is over its share of the open-file limit: a flood could use up descriptors"
            );
        }
    }
    tracing::info!(
        open_files = limit,
        http_max_connections = config.http_limits.max_connections,
        sip_tcp_max_connections = config.sip_tcp_limits.max_connections,
        "open-file limit raised to the hard limit"
    );
}

fn engine_config(config: &Config, key: &[u8; 32]) -> EngineConfig {
    EngineConfig {
        sip: dialbridge_engine::SipConfig {
            listen: config.sip_listen,
            transports: config
                .sip_transports
                .iter()
                .map(|t| match t {
                    Transport::Udp => SipTransport::Udp,
                    Transport::Tcp => SipTransport::Tcp,
                })
                .collect(),
            public_ip: Some(config.public_address),
            user_agent: format!("dialbridge/{}", env!("CARGO_PKG_VERSION")),
            call_id_domain: format!("{}.dialbridge", config.node_name),
            registrar: RegistrarSettings {
                digest: config.sip_digest,
                ..RegistrarSettings::default()
            },
            t1: Duration::from_millis(500),
            server_key: *key,
            unsolicited: Default::default(),
            tcp: config.sip_tcp_limits,
        },
        rtp_ip: config.public_address,
        rtp_ports: config.rtp_ports.clone(),
        rtp_inactivity: config.rtp_inactivity,
    }
}

async fn update_gauges(engine: Engine, calls: CallService, metrics: Arc<Metrics>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let counts = engine.counts();
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.calls_active.set(as_gauge(counts.calls));
        metrics.sip_legs.set(as_gauge(counts.sip_legs));
        metrics.sip_dialogs.set(as_gauge(counts.sip_dialogs));
        metrics.rtp_port_pairs.set(as_gauge(counts.rtp_port_pairs));
        metrics
            .sip_unsolicited_answered
            .inner()
            .store(counts.sip_unsolicited_answered, std::sync::atomic::Ordering::Relaxed);
        metrics
            .sip_unsolicited_dropped
            .inner()
            .store(counts.sip_unsolicited_dropped, std::sync::atomic::Ordering::Relaxed);
        metrics.set_registrations_refused(&counts.sip_registrations_refused);
        metrics.set_recorder_totals(calls.recorder_totals());
        metrics.sip_requests_from_wrong_source.inner().store(
            counts.sip_requests_from_wrong_source,
            std::sync::atomic::Ordering::Relaxed,
        );
        metrics.trunk_up.clear();
        metrics.trunk_registered.clear();
        for (name, status) in engine.trunk_statuses() {
            let labels = vec![("trunk".to_owned(), name)];
            if let Some(health) = status.health {
                // Unknown (not probed yet) is reported as up: calls still use the trunk.
                let up = health != dialbridge_engine::Health::Down;
                metrics.trunk_up.get_or_create(&labels).set(i64::from(up));
            }
            if let Some(registered) = status.registered {
                metrics
                    .trunk_registered
                    .get_or_create(&labels)
                    .set(i64::from(registered));
            }
        }
    }
}

/// SIGINT and SIGTERM, watched from when [`Signals::install`] is called: one that arrives while
/// the server is still starting is kept for it, not lost to the signal's default action.
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    fn install() -> Self {
        fn watch(name: &'static str, kind: SignalKind) -> Option<Signal> {
            signal(kind)
                .inspect_err(|e| tracing::warn!(signal = name, error = %e, "cannot watch the signal"))
                .ok()
        }
        Self {
            interrupt: watch("SIGINT", SignalKind::interrupt()),
            terminate: watch("SIGTERM", SignalKind::terminate()),
        }
    }

    /// The next SIGINT or SIGTERM, by name.
    async fn next(&mut self) -> &'static str {
        async fn received(handler: &mut Option<Signal>) {
            match handler {
                Some(handler) => {
                    handler.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = received(&mut self.interrupt) => "SIGINT",
            () = received(&mut self.terminate) => "SIGTERM",
        }
    }
}

/// The binary's `serve`: starts the server and serves until SIGINT or SIGTERM. A signal during
/// start-up stops the server as soon as it has started (its recovery done, nothing left half
/// way); a second one stops it at once (a start-up that hangs, say on an unreachable database).
pub async fn serve_until_signalled(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install();
    let start = Server::start(config);
    tokio::pin!(start);
    let server = tokio::select! {
        server = &mut start => server?,
        name = signals.next() => {
            tracing::info!("{name} during start-up: stopping once started (another signal stops at once)");
            let server = tokio::select! {
                server = &mut start => server?,
                name = signals.next() => {
                    anyhow::bail!("{name} again during start-up: stopped before the server had started")
                }
            };
            return server.run(std::future::ready(())).await;
        }
    };
    server
        .run(async move {
            let name = signals.next().await;
            tracing::info!("{name}: shutting down");
        })
        .await
}

/// The softphone's `RTCIceServer` list: each STUN server alone, each TURN server with the
/// configured username and credential.
fn ice_servers(urls: &[String], turn: Option<&(String, String)>) -> serde_json::Value {
    urls.iter()
        .map(|url| match turn {
            Some((username, credential)) if url.starts_with("turn") => {
                serde_json::json!({"urls": url, "username": username, "credential": credential})
            }
            _ => serde_json::json!({"urls": url}),
        })
        .collect()
}
