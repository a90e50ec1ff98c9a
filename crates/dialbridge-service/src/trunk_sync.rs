//! Keeps the engine watching the trunks the store configures (keepalive OPTIONS, registration
//! with the carrier) and knowing where carriers send from.

use std::time::Duration;

use dialbridge_engine::{TrunkAccount, TrunkWatch};
use dialbridge_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::routing::{carrier_target, trunk_destination};
use crate::CallService;

impl CallService {
    /// Keeps the engine watching the trunks the store configures for it (keepalive OPTIONS,
    /// registration with the carrier) and knowing where carriers send from, reading them again
    /// every `every`, so a change made with `dialbridge admin` or `provision` takes effect
    /// without a restart; until `stop` is cancelled.
    pub async fn watch_trunks(self, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match self.trunk_watches().await {
                Ok((watches, sources)) => {
                    self.inner.engine.watch_trunks(watches);
                    self.inner.engine.set_carrier_sources(sources);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the trunks to watch"),
            }
        }
    }

    /// The trunks to watch, and the addresses all carriers send from.
    async fn trunk_watches(&self) -> Result<(Vec<TrunkWatch>, Vec<ipnet::IpNet>), StoreError> {
        let mut tx = self.inner.store.begin_read().await?;
        let mut watches = Vec::new();
        let mut sources = Vec::new();
        for record in tx.trunks().await? {
            let trunk = record.trunk;
            let target = carrier_target(&trunk).await;
            match &target {
                _ if !trunk.sources.is_empty() => sources.extend(trunk.sources.iter().copied()),
                Some(target) => sources.push(ipnet::IpNet::from(target.destination.ip())),
                None => {}
            }
            if trunk.keepalive_secs == 0 && trunk.register_secs == 0 {
                continue;
            }
            let Some(target) = target else {
                tracing::warn!(trunk = %trunk.name, address = %trunk_destination(&trunk), "cannot resolve the trunk to watch it");
                continue;
            };
            let registration = match (&trunk.auth_username, trunk.register_secs) {
                (Some(user), secs) if secs > 0 => Some(TrunkAccount {
                    user: user.clone(),
                    password: tx.trunk_password(&trunk.name).await?.unwrap_or_default(),
                    expires_secs: secs,
                }),
                _ => None,
            };
            watches.push(TrunkWatch {
                name: trunk.name.clone(),
                target,
                keepalive: (trunk.keepalive_secs > 0).then(|| Duration::from_secs(u64::from(trunk.keepalive_secs))),
                registration,
            });
        }
        Ok((watches, sources))
    }
}
