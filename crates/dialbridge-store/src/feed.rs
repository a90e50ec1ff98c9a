//! Committed outbox events fanned out from memory: a transaction that wrote events publishes them
//! once it has committed, so the live event stream and the push dispatcher wait on a channel
//! instead of polling the database. The store reads the database only for what a subscriber
//! missed (a reconnect's `since`, or a subscriber too slow to keep up).

use std::sync::Arc;

use dialbridge_core::EnterpriseId;
use tokio::sync::broadcast;

/// An event of the outbox, as written in the transaction of the change that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id: its order, and the live stream's sequence number.
    pub id: i64,
    pub enterprise_id: EnterpriseId,
    pub event_type: String,
    /// The call's uniqueId, or `agent:<id>` for an agent's status.
    pub stream_key: String,
    /// The event's variables under their legacy names, as JSON.
    pub payload: String,
    pub created_at: i64,
}

/// Where committed events go. One process uses [`LocalEventFeed`]; several nodes sharing one
/// PostgreSQL database need a feed that also carries other nodes' events (LISTEN/NOTIFY).
pub trait EventFeed: Send + Sync + 'static {
    /// Called once per committed transaction with the events it wrote, in id order.
    fn publish(&self, events: Vec<Arc<OutboxEvent>>);
    /// Every event published from now on, in commit order. A receiver that falls more than the
    /// feed's capacity behind gets `Lagged` and must read what it missed from the store.
    fn subscribe(&self) -> broadcast::Receiver<Arc<OutboxEvent>>;
}

/// The feed of a single process: a broadcast channel.
pub struct LocalEventFeed {
    sender: broadcast::Sender<Arc<OutboxEvent>>,
}

impl LocalEventFeed {
    /// `capacity` events may wait for the slowest subscriber before it lags.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }
}

impl Default for LocalEventFeed {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventFeed for LocalEventFeed {
    fn publish(&self, events: Vec<Arc<OutboxEvent>>) {
        for event in events {
            // An error only means that nobody is subscribed now: the outbox has the event.
            let _ = self.sender.send(event);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<OutboxEvent>> {
        self.sender.subscribe()
    }
}
