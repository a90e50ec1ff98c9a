-- The push outbox: every push-worthy event is written here in the same transaction as the
-- change that causes it, with one delivery row per push target of its type. The dispatcher
-- delivers from here, never from memory, in event order per (target, stream).
CREATE TABLE push_events (
    id BIGINT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    event_type TEXT NOT NULL CHECK (event_type IN ('hangup', 'bridge', 'agent_status', 'ringing')),
    -- The call's uniqueId, or 'agent:<id>' for status events: ordering is per stream.
    stream_key TEXT NOT NULL,
    -- JSON object: variable name -> value, with the legacy default names.
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE push_deliveries (
    event_id BIGINT NOT NULL REFERENCES push_events (id),
    enterprise_id BIGINT NOT NULL,
    target_name TEXT NOT NULL,
    stream_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    delivered_at BIGINT,
    PRIMARY KEY (event_id, enterprise_id, target_name)
);
CREATE INDEX push_deliveries_due ON push_deliveries (state, next_attempt_at);
CREATE INDEX push_deliveries_stream ON push_deliveries (enterprise_id, target_name, stream_key, state, event_id);

-- Each push target signs its requests (Standard Webhooks) with its own secret.
ALTER TABLE push_targets ADD COLUMN secret_sealed TEXT;
