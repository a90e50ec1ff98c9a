//! SIP accounts from the store: a phone registers as `<enterpriseId>-<extension>` (for example
//! `3000001-801`), which keeps two enterprises' extension 801 apart without a DNS domain per
//! enterprise, and is what a person types into a softphone's user name.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialbridge_core::{EnterpriseId, ExtensionNumber};
use dialbridge_engine::{KeptBinding, SipTransport};
use dialbridge_sip::AccountDirectory;
use dialbridge_store::{SipRegistration, Store, StoreError};
use tokio::sync::Notify;

use crate::CallService;

/// How often expired registrations are deleted from the store.
const REGISTRATION_SWEEP: Duration = Duration::from_secs(600);

pub fn extension_aor(enterprise: EnterpriseId, extension: &ExtensionNumber) -> String {
    format!("{enterprise}-{extension}")
}

pub fn parse_aor(aor: &str) -> Option<(EnterpriseId, ExtensionNumber)> {
    let (enterprise, extension) = aor.split_once('-')?;
    Some((
        EnterpriseId::parse(enterprise).ok()?,
        ExtensionNumber::parse(extension).ok()?,
    ))
}

/// The SIP accounts of the store's extensions, and their registrations kept in the store.
pub struct StoreDirectory {
    store: Store,
    kept: Arc<KeptRegistrations>,
}

/// Registrations waiting to be written, the latest per address-of-record: a phone that
/// re-registers faster than the store writes costs one write, and what waits is bounded by
/// the number of phones, whatever the REGISTER rate.
#[derive(Default)]
struct KeptRegistrations {
    pending: Mutex<HashMap<String, Vec<KeptBinding>>>,
    wake: Notify,
    closed: AtomicBool,
}

impl KeptRegistrations {
    fn take(&self) -> HashMap<String, Vec<KeptBinding>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back what could not be written, unless newer bindings came meanwhile.
    fn put_back(&self, unwritten: HashMap<String, Vec<KeptBinding>>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (aor, bindings) in unwritten {
            pending.entry(aor).or_insert(bindings);
        }
    }
}

impl StoreDirectory {
    /// Starts the task that writes registrations to the store (call it inside the runtime); it
    /// ends, after a last write, when the directory is dropped.
    pub fn new(store: Store) -> Self {
        let kept = Arc::new(KeptRegistrations::default());
        tokio::spawn(write_registrations(store.clone(), kept.clone()));
        Self { store, kept }
    }
}

impl Drop for StoreDirectory {
    fn drop(&mut self) {
        self.kept.closed.store(true, Ordering::SeqCst);
        self.kept.wake.notify_one();
    }
}

fn stored(aor: &str, b: &KeptBinding) -> SipRegistration {
    SipRegistration {
        aor: aor.to_owned(),
        contact: b.contact.clone(),
        expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
        source: b.source,
        over_tcp: b.transport == SipTransport::Tcp,
        call_id: b.call_id.clone(),
        cseq: i64::from(b.cseq),
    }
}

fn kept(r: SipRegistration) -> KeptBinding {
    KeptBinding {
        contact: r.contact,
        expires_at: u64::try_from(r.expires_at).unwrap_or(0),
        source: r.source,
        transport: if r.over_tcp {
            SipTransport::Tcp
        } else {
            SipTransport::Udp
        },
        connection: r.source,
        call_id: r.call_id,
        cseq: u32::try_from(r.cseq).unwrap_or(0),
    }
}

fn now_secs() -> i64 {
    crate::now_ms() / 1000
}

async fn write_registrations(store: Store, kept: Arc<KeptRegistrations>) {
    let mut sweep = tokio::time::interval(REGISTRATION_SWEEP);
    loop {
        let batch = kept.take();
        if !batch.is_empty() {
            let written = async {
                let mut tx = store.begin().await?;
                for (aor, bindings) in &batch {
                    let rows: Vec<SipRegistration> = bindings.iter().map(|b| stored(aor, b)).collect();
                    tx.replace_sip_registrations(aor, &rows).await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, phones = batch.len(), "cannot keep registrations in the store; retrying");
                kept.put_back(batch);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if kept.closed.load(Ordering::SeqCst) {
            return;
        }
        tokio::select! {
            () = kept.wake.notified() => {}
            _ = sweep.tick() => {
                let swept = async {
                    let mut tx = store.begin().await?;
                    let swept = tx.sweep_sip_registrations(now_secs()).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(swept)
                }
                .await;
                if let Err(e) = swept {
                    tracing::warn!(error = %e, "cannot delete expired registrations");
                }
            }
        }
    }
}

impl CallService {
    /// At start: the registrations the previous run kept, handed back to the SIP layer, so
    /// phones registered over UDP are reachable at once. Returns how many were taken back.
    pub async fn restore_registrations(&self) -> Result<usize, StoreError> {
        let mut by_aor: HashMap<String, Vec<KeptBinding>> = HashMap::new();
        let live = self
            .inner
            .store
            .begin_read()
            .await?
            .live_sip_registrations(now_secs())
            .await?;
        for registration in live {
            by_aor
                .entry(registration.aor.clone())
                .or_default()
                .push(kept(registration));
        }
        Ok(self.inner.engine.restore_registrations(by_aor.into_iter().collect()))
    }
}

impl AccountDirectory for StoreDirectory {
    fn sip_password(&self, aor: &str) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        let parsed = parse_aor(aor);
        Box::pin(async move {
            let (enterprise, extension) = parsed?;
            let mut tx = self.store.begin_read().await.ok()?;
            match tx.extension_password(enterprise, &extension).await {
                Ok(password) => password,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read an extension's SIP password");
                    None
                }
            }
        })
    }

    fn bindings_changed(&self, aor: &str, bindings: Vec<KeptBinding>) {
        self.kept
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(aor.to_owned(), bindings);
        self.kept.wake.notify_one();
    }
}

#[cfg(test)]
#[path = "directory_test.rs"]
mod tests;
