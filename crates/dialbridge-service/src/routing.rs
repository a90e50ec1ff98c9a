//! Trunks as routes: every trunk serving an enterprise (from the configuration in memory), its
//! destination resolved (DNS) *before* the acceptance transaction, so no writer waits behind a
//! lookup.
//! Which of them a call uses is the policy's decision ([`crate::policy`]).

use dialbridge_core::{EnterpriseId, SipAddress, Transport, Trunk};
use dialbridge_engine::{CarrierTarget, SipTransport, TrunkRoute};

use crate::configuration::ConfiguredTrunk;

/// Where a trunk's requests go: its outbound proxy when it has one.
pub fn trunk_destination(trunk: &Trunk) -> &SipAddress {
    trunk.outbound_proxy.as_ref().unwrap_or(&trunk.address)
}

/// The trunk's carrier with its destination resolved; `None` when it does not resolve.
pub async fn carrier_target(trunk: &Trunk) -> Option<CarrierTarget> {
    let destination = tokio::net::lookup_host(trunk_destination(trunk).to_string())
        .await
        .ok()?
        .next()?;
    Some(CarrierTarget {
        destination,
        transport: match trunk.transport {
            Transport::Udp => SipTransport::Udp,
            Transport::Tcp => SipTransport::Tcp,
        },
        host: trunk.address.to_string(),
    })
}

/// Every configured trunk, with a route for each that serves `enterprise` and resolves (the
/// others have none: a call never goes through them).
pub async fn trunks_for(trunks: &[ConfiguredTrunk], enterprise: EnterpriseId) -> Vec<(Trunk, Option<TrunkRoute>)> {
    let mut routes = Vec::with_capacity(trunks.len());
    for configured in trunks {
        let trunk = &configured.record.trunk;
        let route = if trunk.enterprises.contains(&enterprise) {
            let credential = trunk.auth_username.clone().zip(configured.password.clone());
            carrier_target(trunk).await.map(|target| TrunkRoute {
                name: trunk.name.clone(),
                address: target.destination,
                host: target.host,
                transport: target.transport,
                credential,
                number_format: trunk.customer_number_format.clone(),
                caller_id_format: trunk.caller_id_format.clone(),
                sources: trunk.sources.clone(),
            })
        } else {
            None
        };
        routes.push((trunk.clone(), route));
    }
    routes
}
