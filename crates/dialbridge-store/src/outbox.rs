//! The push outbox: events written with the change that causes them, deliveries per target.

use std::sync::Arc;

use crate::db::{query, query_as};
use dialbridge_core::EnterpriseId;

use crate::config::now_ms;
use crate::corrupt;
use crate::{OutboxEvent, StoreError, Tx};

/// One delivery to make: the event and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub event_id: i64,
    pub enterprise_id: EnterpriseId,
    pub target_name: String,
    pub stream_key: String,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: u32,
}

/// A delivery as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: i64,
    pub target_name: String,
    pub event_type: String,
    pub stream_key: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub payload: String,
}

impl Tx<'_> {
    /// Writes an event and a pending delivery for each of the enterprise's push targets of its
    /// type; returns the event id. Call it in the transaction of the change that causes it.
    pub async fn enqueue_push(
        &mut self,
        enterprise: EnterpriseId,
        event_type: &str,
        stream_key: &str,
        payload: &str,
    ) -> Result<i64, StoreError> {
        let id = self.next_id("push_events").await?;
        let now = now_ms();
        query("INSERT INTO push_events (id, enterprise_id, event_type, stream_key, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(enterprise.get())
            .bind(event_type)
            .bind(stream_key)
            .bind(payload)
            .bind(now)
            .execute(&mut self.conn)
            .await?;
        query(
            "INSERT INTO push_deliveries (event_id, enterprise_id, target_name, stream_key, state, attempts, next_attempt_at) \
             SELECT $1, enterprise_id, name, $3, 'pending', 0, $4 FROM push_targets WHERE enterprise_id = $2 AND push_type = $5",
        )
        .bind(id)
        .bind(enterprise.get())
        .bind(stream_key)
        .bind(now)
        .bind(event_type)
        .execute(&mut self.conn)
        .await?;
        self.written_events.push(Arc::new(OutboxEvent {
            id,
            enterprise_id: enterprise,
            event_type: event_type.to_owned(),
            stream_key: stream_key.to_owned(),
            payload: payload.to_owned(),
            created_at: now,
        }));
        Ok(id)
    }

    /// Deliveries due now whose stream (a call, an agent's status) has no earlier pending event
    /// for the same target (so a later event never overtakes an earlier one there), oldest
    /// first. With the enterprise's `push_order` `per_call`, a call's delivery also waits for
    /// the call's earlier pending events to any target that are younger than
    /// `push_order_wait_secs`: an event stuck past its bound stops holding the others back,
    /// while those still live keep their order. (An agent's status stream lasts as long as the
    /// agent: one dead target must not slow its other targets for a day, so it is not held.)
    pub async fn due_deliveries(&mut self, now: i64, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = query(
            "SELECT d.event_id, d.enterprise_id, d.target_name, d.stream_key, d.attempts, e.event_type, e.payload, e.created_at \
             FROM push_deliveries d JOIN push_events e ON e.id = d.event_id JOIN enterprises n ON n.id = d.enterprise_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND NOT EXISTS ( \
                 SELECT 1 FROM push_deliveries p WHERE p.enterprise_id = d.enterprise_id AND p.target_name = d.target_name \
                 AND p.stream_key = d.stream_key AND p.state = 'pending' AND p.event_id < d.event_id) \
             AND (n.push_order = 'per_target' OR d.stream_key LIKE 'agent:%' OR NOT EXISTS ( \
                 SELECT 1 FROM push_deliveries o JOIN push_events oe ON oe.id = o.event_id \
                 WHERE o.enterprise_id = d.enterprise_id AND o.stream_key = d.stream_key \
                 AND o.state = 'pending' AND o.event_id < d.event_id \
                 AND oe.created_at + n.push_order_wait_secs * 1000 > $1)) \
             ORDER BY d.event_id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    event_id: row.try_get("event_id")?,
                    enterprise_id: EnterpriseId::new(row.try_get("enterprise_id")?).map_err(corrupt)?,
                    target_name: row.try_get("target_name")?,
                    stream_key: row.try_get("stream_key")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    created_at: row.try_get("created_at")?,
                    attempts: u32::try_from(row.try_get::<i64>("attempts")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// The enterprise's events after `after_id`, oldest first. The event ids are the live
    /// stream's sequence numbers.
    pub async fn events_since(
        &mut self,
        enterprise: EnterpriseId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows: Vec<(i64, String, String, String, i64)> = query_as(
            "SELECT id, event_type, stream_key, payload, created_at FROM push_events WHERE enterprise_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(enterprise.get())
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&mut self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, event_type, stream_key, payload, created_at)| OutboxEvent {
                id,
                enterprise_id: enterprise,
                event_type,
                stream_key,
                payload,
                created_at,
            })
            .collect())
    }

    /// The newest event id of an enterprise (0 when none): where a fresh stream starts.
    pub async fn latest_event_id(&mut self, enterprise: EnterpriseId) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = query_as("SELECT MAX(id) FROM push_events WHERE enterprise_id = $1")
            .bind(enterprise.get())
            .fetch_one(&mut self.conn)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Whether a delivery is still waiting (a dispatcher re-checks this before sending, since
    /// the list it works from may be older than a result just recorded).
    pub async fn delivery_pending(
        &mut self,
        event_id: i64,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<bool, StoreError> {
        let row: Option<(String,)> = query_as(
            "SELECT state FROM push_deliveries WHERE event_id = $1 AND enterprise_id = $2 AND target_name = $3",
        )
        .bind(event_id)
        .bind(enterprise.get())
        .bind(target)
        .fetch_optional(&mut self.conn)
        .await?;
        Ok(row.is_some_and(|(state,)| state == "pending"))
    }

    pub async fn mark_delivered(
        &mut self,
        event_id: i64,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE push_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = $4, last_error = NULL \
             WHERE event_id = $1 AND enterprise_id = $2 AND target_name = $3",
        )
        .bind(event_id)
        .bind(enterprise.get())
        .bind(target)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// A failed attempt: try again at `next_attempt_at`, or give up (`dead`) when `None`.
    pub async fn mark_failed(
        &mut self,
        event_id: i64,
        enterprise: EnterpriseId,
        target: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE push_deliveries SET attempts = attempts + 1, last_error = $4, \
             state = CASE WHEN $5 IS NULL THEN 'dead' ELSE 'pending' END, next_attempt_at = COALESCE($5, next_attempt_at) \
             WHERE event_id = $1 AND enterprise_id = $2 AND target_name = $3",
        )
        .bind(event_id)
        .bind(enterprise.get())
        .bind(target)
        .bind(error)
        .bind(next_attempt_at)
        .execute(&mut self.conn)
        .await?;
        Ok(())
    }

    /// An enterprise's deliveries in a state ("pending", "delivered", "dead"), newest first.
    pub async fn deliveries(
        &mut self,
        enterprise: EnterpriseId,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = query(
            "SELECT d.event_id, d.target_name, d.stream_key, d.state, d.attempts, d.last_error, e.event_type, e.payload \
             FROM push_deliveries d JOIN push_events e ON e.id = d.event_id \
             WHERE d.enterprise_id = $1 AND ($2 IS NULL OR d.state = $2) ORDER BY d.event_id DESC LIMIT $3",
        )
        .bind(enterprise.get())
        .bind(state)
        .bind(i64::from(limit))
        .fetch_all(&mut self.conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryRecord {
                    event_id: row.try_get("event_id")?,
                    target_name: row.try_get("target_name")?,
                    event_type: row.try_get("event_type")?,
                    stream_key: row.try_get("stream_key")?,
                    state: row.try_get("state")?,
                    attempts: u32::try_from(row.try_get::<i64>("attempts")?).unwrap_or(u32::MAX),
                    last_error: row.try_get("last_error")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    /// Puts a dead (or delivered) delivery back in the queue, to be sent at once.
    pub async fn replay_delivery(
        &mut self,
        event_id: i64,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<(), StoreError> {
        let done = query(
            "UPDATE push_deliveries SET state = 'pending', next_attempt_at = $4 WHERE event_id = $1 AND enterprise_id = $2 AND target_name = $3",
        )
        .bind(event_id)
        .bind(enterprise.get())
        .bind(target)
        .bind(now_ms())
        .execute(&mut self.conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "delivery of event {event_id} to {target}"
            )));
        }
        Ok(())
    }

    /// The secrets a push target signs with: the current one, and the previous one while a
    /// rotation is under way.
    pub async fn push_target_secrets(
        &mut self,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<(String, Option<String>), StoreError> {
        let current = self.push_target_secret(enterprise, target).await?;
        let row: Option<(Option<String>,)> =
            query_as("SELECT previous_secret_sealed FROM push_targets WHERE enterprise_id = $1 AND name = $2")
                .bind(enterprise.get())
                .bind(target)
                .fetch_optional(&mut self.conn)
                .await?;
        let previous = row
            .and_then(|(p,)| p)
            .map(|sealed| self.store.sealer().open(&sealed))
            .transpose()?;
        Ok((current, previous))
    }

    /// Starts a rotation: a new current secret; the old one keeps signing beside it.
    pub async fn rotate_push_target_secret(
        &mut self,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<String, StoreError> {
        let old = self.push_target_secret(enterprise, target).await?;
        query(
            "UPDATE push_targets SET previous_secret_sealed = $3, secret_sealed = NULL WHERE enterprise_id = $1 AND name = $2",
        )
        .bind(enterprise.get())
        .bind(target)
        .bind(self.store.sealer().seal(&old))
        .execute(&mut self.conn)
        .await?;
        self.push_target_secret(enterprise, target).await
    }

    /// Ends a rotation: only the current secret signs.
    pub async fn drop_previous_push_target_secret(
        &mut self,
        enterprise: EnterpriseId,
        target: &str,
    ) -> Result<(), StoreError> {
        query("UPDATE push_targets SET previous_secret_sealed = NULL WHERE enterprise_id = $1 AND name = $2")
            .bind(enterprise.get())
            .bind(target)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The signing secret of a push target, creating one the first time.
    pub async fn push_target_secret(&mut self, enterprise: EnterpriseId, target: &str) -> Result<String, StoreError> {
        let row: Option<(Option<String>,)> =
            query_as("SELECT secret_sealed FROM push_targets WHERE enterprise_id = $1 AND name = $2")
                .bind(enterprise.get())
                .bind(target)
                .fetch_optional(&mut self.conn)
                .await?;
        match row {
            None => Err(StoreError::NotFound(format!("push target {target}"))),
            Some((Some(sealed),)) => self.store.sealer().open(&sealed),
            Some((None,)) => {
                // The Standard Webhooks form: "whsec_" and the base64 of the key bytes.
                let secret = format!(
                    "whsec_{}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, rand::random::<[u8; 24]>())
                );
                query("UPDATE push_targets SET secret_sealed = $3 WHERE enterprise_id = $1 AND name = $2")
                    .bind(enterprise.get())
                    .bind(target)
                    .bind(self.store.sealer().seal(&secret))
                    .execute(&mut self.conn)
                    .await?;
                Ok(secret)
            }
        }
    }
}
