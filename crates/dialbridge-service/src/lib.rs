//! The application layer: what dialbridge does with a request once a wire crate (the legacy
//! interface today, the modern API later) has parsed and authenticated it, apart from any wire
//! format. [`CallService`] places a preview outcall (the pure [`policy`] decides over a
//! snapshot; [`routing`] resolves trunks before any transaction), follows it through the engine
//! ([`outcall`]), closes it into its CDR ([`close`]), closes what a crash left ([`recovery`]) and
//! keeps the engine watching the configured trunks ([`trunk_sync`]). [`directory`] gives the SIP
//! stack its accounts; [`Metrics`] is the registry every part reports in.
//!
//! Invariant: no wire knowledge (no legacy codes, parameter names or JSON shapes); every
//! decision that can be is a pure function here or in `dialbridge-core`.

pub mod close;
pub mod configuration;
pub mod directory;
mod metrics;
pub mod outcall;
pub mod policy;
pub mod recordings;
pub mod recovery;
pub mod retention;
pub mod routing;
pub mod sessions;
pub mod trunk_sync;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialbridge_core::agent::AgentState;
use dialbridge_core::{EnterpriseId, NodeName, PhoneType};
use dialbridge_engine::Engine;
use dialbridge_store::{Store, StoreError, Tx};
use tokio_util::task::TaskTracker;

pub use configuration::{ConfigCache, Configuration, ConfiguredTrunk, EnterpriseConfig};
pub use dialbridge_engine::{SoftphoneAttachment, SoftphoneSignal};
pub use directory::{extension_aor, parse_aor, StoreDirectory};
pub use metrics::{Metrics, TrunkGauges};
pub use outcall::Accepted;
pub use policy::{OutcallRequest, Refusal, RingLimits};
pub use recordings::{Downloadable, RecordingRefusal, Recordings};
pub use sessions::{CallOf, PhoneChoice, SessionRefusal};

/// The wall clock in Unix milliseconds: read at the edges, passed into pure code.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct CallService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Engine,
    node: NodeName,
    /// How often a bridged call's CDR row is marked alive (what a restart bills it up to).
    heartbeat: Duration,
    metrics: Arc<Metrics>,
    /// The tasks following the calls, each until its CDR is written.
    calls: TaskTracker,
    config: ConfigCache,
    recordings: recordings::Recordings,
}

impl CallService {
    pub fn new(
        store: Store,
        engine: Engine,
        node: NodeName,
        heartbeat: Duration,
        metrics: Arc<Metrics>,
        recordings: recordings::Recordings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                engine,
                node,
                heartbeat,
                metrics,
                calls: TaskTracker::new(),
                config: ConfigCache::default(),
                recordings,
            }),
        }
    }

    /// Waits, for up to `within`, until every call followed so far has its CDR written (the
    /// engine must have ended the calls); whether they all did. One still open is closed by the
    /// next start's recovery.
    pub async fn calls_closed(&self, within: Duration) -> bool {
        self.inner.calls.close();
        tokio::time::timeout(within, self.inner.calls.wait()).await.is_ok()
    }

    /// The operator's configuration as the store has it now (see [`ConfigCache::current`]).
    pub async fn configuration(&self) -> Result<Arc<Configuration>, StoreError> {
        self.inner.config.current(&self.inner.store).await
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Writes the agent-status push of an agent's state, in the caller's transaction (the one
    /// that changed the state).
    pub async fn push_status(
        &self,
        tx: &mut Tx<'_>,
        enterprise: EnterpriseId,
        agent_id: i64,
        cno: &str,
        state: &AgentState,
        customer_number: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let state = state.clone().at(now);
        let phone = tx.bound_phone(agent_id).await?;
        let reachable = self.phone_reachable(enterprise, phone.as_ref());
        let payload = dialbridge_push::fields::status(&dialbridge_push::fields::AgentStatus {
            enterprise_id: enterprise.get(),
            cno,
            bind_tel: phone.as_ref().map_or("", |(_, n)| n.as_str()),
            login_status: state.login.as_str(),
            device_status: state.device(reachable).as_str(),
            pause_description: state.pause_description.as_deref().unwrap_or(""),
            customer_number,
            unique_id: state.call.as_ref().map_or("", |c| c.unique_id.as_str()),
            wrapup_secs_left: state.wrapup_seconds_left(now),
        });
        tx.enqueue_push(enterprise, "agent_status", &format!("agent:{agent_id}"), &payload)
            .await?;
        Ok(())
    }

    /// Whether the agent's bound phone can be reached now (an extension must be registered).
    pub fn phone_reachable(&self, enterprise: EnterpriseId, phone: Option<&(PhoneType, String)>) -> bool {
        match phone {
            Some((PhoneType::Extension, number)) => self.inner.engine.is_registered(&format!("{enterprise}-{number}")),
            Some((PhoneType::Softphone, number)) => {
                self.inner.engine.softphone_attached(&format!("{enterprise}-{number}"))
            }
            Some(_) => true,
            None => false,
        }
    }
}
