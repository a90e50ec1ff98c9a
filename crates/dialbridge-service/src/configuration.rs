//! The operator's configuration in memory: enterprises' settings, agents with their password
//! hashes, admin accounts, caller ids, blacklists and trunks with their credentials, read from
//! the store in a handful of statements and kept until the store's configuration generation
//! moves. A request reads the generation (one row) and then decides from memory; a write by
//! `dialbridge admin` or `provision` in another process takes effect at the next request.
//! Balances and agents' runtime state are not configuration: they are read in the transaction
//! that acts on them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dialbridge_core::{BlacklistPattern, CallerId, Cno, Enterprise, EnterpriseId};
use dialbridge_store::{AgentRecord, Store, StoreError, TrunkRecord};
use tokio::sync::Mutex;

/// One enterprise's part of the configuration. Not `Debug`: it holds password hashes and md5s.
#[derive(Clone)]
pub struct EnterpriseConfig {
    /// Its settings; the balance here is as it was when the configuration was read, so a
    /// decision on money reads the store's.
    pub enterprise: Enterprise,
    agents: HashMap<Cno, (AgentRecord, Option<String>)>,
    admins: HashMap<String, String>,
    pub caller_ids: Vec<CallerId>,
    pub blacklist: Vec<BlacklistPattern>,
    /// Played to both parties before the bridge of a recorded call (8 kHz samples).
    pub announcement: Option<Arc<[i16]>>,
}

impl EnterpriseConfig {
    pub fn agent(&self, cno: &Cno) -> Option<&AgentRecord> {
        self.agents.get(cno).map(|(agent, _)| agent)
    }

    /// The agent's login password hash (of the md5 the legacy `pwd` carries), if it has one.
    pub fn agent_password_hash(&self, cno: &Cno) -> Option<&str> {
        self.agents.get(cno).and_then(|(_, hash)| hash.as_deref())
    }

    /// md5 of the admin's password, the secret of the legacy seed scheme.
    pub fn admin_password_md5(&self, user_name: &str) -> Option<&str> {
        self.admins.get(user_name).map(String::as_str)
    }
}

/// A trunk with its digest password in clear (not `Debug`, so it cannot be logged).
#[derive(Clone)]
pub struct ConfiguredTrunk {
    pub record: TrunkRecord,
    pub password: Option<String>,
}

/// The whole configuration at one generation.
pub struct Configuration {
    generation: i64,
    enterprises: HashMap<EnterpriseId, EnterpriseConfig>,
    trunks: Vec<ConfiguredTrunk>,
}

impl Configuration {
    pub fn enterprise(&self, id: EnterpriseId) -> Option<&EnterpriseConfig> {
        self.enterprises.get(&id)
    }

    pub fn enterprise_ids(&self) -> Vec<EnterpriseId> {
        self.enterprises.keys().copied().collect()
    }

    /// Every trunk, by name.
    pub fn trunks(&self) -> &[ConfiguredTrunk] {
        &self.trunks
    }

    async fn load(store: &Store) -> Result<Self, StoreError> {
        let mut tx = store.begin_read().await?;
        let generation = tx.config_generation().await?;
        let mut enterprises: HashMap<EnterpriseId, EnterpriseConfig> = tx
            .enterprises()
            .await?
            .into_iter()
            .map(|enterprise| {
                (
                    enterprise.id,
                    EnterpriseConfig {
                        enterprise,
                        agents: HashMap::new(),
                        admins: HashMap::new(),
                        caller_ids: Vec::new(),
                        blacklist: Vec::new(),
                        announcement: None,
                    },
                )
            })
            .collect();
        for (agent, hash) in tx.all_agents_with_password_hashes().await? {
            if let Some(e) = enterprises.get_mut(&agent.enterprise_id) {
                e.agents.insert(agent.cno.clone(), (agent, hash));
            }
        }
        for admin in tx.all_admin_credentials().await? {
            if let Some(e) = enterprises.get_mut(&admin.enterprise_id) {
                e.admins.insert(admin.user_name, admin.password_md5);
            }
        }
        for caller_id in tx.caller_ids(None).await? {
            if let Some(e) = enterprises.get_mut(&caller_id.enterprise_id) {
                e.caller_ids.push(caller_id);
            }
        }
        for (enterprise, pattern) in tx.all_blacklists().await? {
            if let Some(e) = enterprises.get_mut(&enterprise) {
                e.blacklist.push(pattern);
            }
        }
        for (enterprise, samples) in tx.recording_announcements().await? {
            if let Some(e) = enterprises.get_mut(&enterprise) {
                e.announcement = Some(samples.into());
            }
        }
        let mut trunks = Vec::new();
        for record in tx.trunks().await? {
            let password = match record.has_password {
                true => tx.trunk_password(&record.trunk.name).await?,
                false => None,
            };
            trunks.push(ConfiguredTrunk { record, password });
        }
        Ok(Self {
            generation,
            enterprises,
            trunks,
        })
    }
}

/// The configuration as of the store's current generation, reloaded when it moved.
#[derive(Default)]
pub struct ConfigCache {
    current: RwLock<Option<Arc<Configuration>>>,
    /// One reload at a time; the others wait for it and take its result.
    reloading: Mutex<()>,
}

impl ConfigCache {
    /// The current configuration: one read of the generation, and a reload only when a
    /// configuration write has committed since the last one.
    pub async fn current(&self, store: &Store) -> Result<Arc<Configuration>, StoreError> {
        let generation = store.begin_read().await?.config_generation().await?;
        if let Some(held) = self.held(generation) {
            return Ok(held);
        }
        let _reloading = self.reloading.lock().await;
        if let Some(held) = self.held(generation) {
            return Ok(held);
        }
        let loaded = Arc::new(Configuration::load(store).await?);
        tracing::debug!(generation = loaded.generation, "configuration reloaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(loaded.clone());
        Ok(loaded)
    }

    /// What is held, if it is at least as new as `generation`.
    fn held(&self, generation: i64) -> Option<Arc<Configuration>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|held| held.generation >= generation)
            .cloned()
    }
}
