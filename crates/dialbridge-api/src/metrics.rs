//! The Prometheus registry every part of the server registers its metrics in.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub start_time_seconds: Gauge,
}

impl Metrics {
    pub fn new(node_name: &str) -> Self {
        let mut registry = Registry::with_prefix("dialbridge");
        registry.register(
            "build",
            "Version and node name of this server",
            Info::new(vec![
                ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("node".to_owned(), node_name.to_owned()),
            ]),
        );
        let start_time_seconds = Gauge::default();
        registry.register(
            "start_time_seconds",
            "Unix time at which this server started",
            start_time_seconds.clone(),
        );
        Self {
            registry,
            start_time_seconds,
        }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
