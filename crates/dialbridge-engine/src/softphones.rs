//! Agents whose phone is their browser (binding type 3): who has a page attached now, and the
//! one call each is rung with. The page's toolbar attaches when the agent logs in on it and
//! detaches when its socket ends (a closed tab, a lost network, a kick): a call it was ringing
//! or carrying is then told its agent's leg is gone, at once rather than after the media times
//! out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::{Control, Shared};

/// What the engine tells an attached page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoftphoneSignal {
    /// A call for the agent: the page rings, then answers with its offer
    /// ([`crate::Engine::answer_softphone`]) or declines.
    Incoming { unique_id: String, customer_number: String },
    /// The call ended, or was given up before the page answered.
    Ended { unique_id: String },
}

struct Page {
    id: u64,
    signals: mpsc::UnboundedSender<SoftphoneSignal>,
    /// The call rung on it, until it ends.
    call: Option<String>,
}

#[derive(Default)]
pub(crate) struct Softphones {
    pages: Mutex<HashMap<String, Page>>,
    next_id: AtomicU64,
}

impl Softphones {
    fn pages(&self) -> MutexGuard<'_, HashMap<String, Page>> {
        self.pages.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_attached(&self, aor: &str) -> bool {
        self.pages().get(aor).is_some_and(|page| !page.signals.is_closed())
    }

    /// Rings the page attached for `aor` with a call; false when none is.
    pub(crate) fn ring(&self, aor: &str, unique_id: &str, customer_number: &str) -> bool {
        let mut pages = self.pages();
        let Some(page) = pages.get_mut(aor) else {
            return false;
        };
        let incoming = SoftphoneSignal::Incoming {
            unique_id: unique_id.to_owned(),
            customer_number: customer_number.to_owned(),
        };
        if page.signals.send(incoming).is_err() {
            return false;
        }
        page.call = Some(unique_id.to_owned());
        true
    }

    /// The call rung on `aor`'s page ended: the page is told.
    pub(crate) fn ended(&self, aor: &str, unique_id: &str) {
        if let Some(page) = self.pages().get_mut(aor) {
            if page.call.as_deref() == Some(unique_id) {
                page.call = None;
                let _ = page.signals.send(SoftphoneSignal::Ended {
                    unique_id: unique_id.to_owned(),
                });
            }
        }
    }
}

/// A page attached as an agent's softphone; dropping it detaches the page.
pub struct SoftphoneAttachment {
    shared: Arc<Shared>,
    aor: String,
    id: u64,
}

impl std::fmt::Debug for SoftphoneAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftphoneAttachment")
            .field("aor", &self.aor)
            .field("id", &self.id)
            .finish()
    }
}

/// Attaches a page for `aor`, replacing any other (whose call, if any, has lost its agent).
pub(crate) fn attach(
    shared: &Arc<Shared>,
    aor: &str,
) -> (SoftphoneAttachment, mpsc::UnboundedReceiver<SoftphoneSignal>) {
    let (signals, receiver) = mpsc::unbounded_channel();
    let id = shared.softphones.next_id.fetch_add(1, Ordering::Relaxed);
    let replaced = shared.softphones.pages().insert(
        aor.to_owned(),
        Page {
            id,
            signals,
            call: None,
        },
    );
    if let Some(page) = replaced {
        if let Some(call) = page.call {
            // The replaced page is told its call is over (it stops its microphone), and the
            // call that its agent is gone.
            let _ = page.signals.send(SoftphoneSignal::Ended {
                unique_id: call.clone(),
            });
            agent_gone(shared, &call);
        }
    }
    (
        SoftphoneAttachment {
            shared: shared.clone(),
            aor: aor.to_owned(),
            id,
        },
        receiver,
    )
}

fn agent_gone(shared: &Shared, unique_id: &str) {
    if let Some(call) = shared.calls().get(unique_id) {
        let _ = call.send(Control::SoftphoneGone);
    }
}

impl Drop for SoftphoneAttachment {
    fn drop(&mut self) {
        let call = {
            let mut pages = self.shared.softphones.pages();
            match pages.get(&self.aor) {
                Some(page) if page.id == self.id => pages.remove(&self.aor).and_then(|page| page.call),
                _ => None,
            }
        };
        if let Some(call) = call {
            tracing::info!(aor = %self.aor, unique_id = %call, "the agent's softphone page went away during its call");
            agent_gone(&self.shared, &call);
        }
    }
}
