-- When the agent put the running call's customer on hold (NULL: not on hold), so a toolbar
-- that reloads during the call shows it.
ALTER TABLE cdrs ADD COLUMN on_hold_since BIGINT;

-- The event stream carries events no push type has (hold, unhold): the event types are the
-- code's to name, not a CHECK's. SQLite cannot drop a CHECK, so the outbox's two tables are
-- made again (the same statements on PostgreSQL): their rows are set aside in plain copies,
-- the tables dropped and created under their own names (so PostgreSQL's constraints and
-- indexes keep theirs), and the rows put back.
CREATE TABLE push_events_kept AS
    SELECT id, enterprise_id, event_type, stream_key, payload, created_at FROM push_events;
CREATE TABLE push_deliveries_kept AS
    SELECT event_id, enterprise_id, target_name, stream_key, state, attempts, next_attempt_at, last_error, delivered_at
    FROM push_deliveries;
DROP TABLE push_deliveries;
DROP TABLE push_events;

CREATE TABLE push_events (
    id BIGINT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    event_type TEXT NOT NULL,
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
INSERT INTO push_events (id, enterprise_id, event_type, stream_key, payload, created_at)
    SELECT id, enterprise_id, event_type, stream_key, payload, created_at FROM push_events_kept;
INSERT INTO push_deliveries
    (event_id, enterprise_id, target_name, stream_key, state, attempts, next_attempt_at, last_error, delivered_at)
    SELECT event_id, enterprise_id, target_name, stream_key, state, attempts, next_attempt_at, last_error, delivered_at
    FROM push_deliveries_kept;
DROP TABLE push_deliveries_kept;
DROP TABLE push_events_kept;

CREATE INDEX push_events_by_time ON push_events (created_at);
CREATE INDEX push_deliveries_due ON push_deliveries (state, next_attempt_at);
CREATE INDEX push_deliveries_stream ON push_deliveries (enterprise_id, target_name, stream_key, state, event_id);
CREATE INDEX push_deliveries_call ON push_deliveries (enterprise_id, stream_key, event_id) WHERE state = 'pending';
