-- per_call: a call's later push waits until its earlier pushes to every target of the
-- enterprise are delivered or dead, or older than push_order_wait_secs; per_target: each
-- target's queue on its own.
ALTER TABLE enterprises ADD COLUMN push_order TEXT NOT NULL DEFAULT 'per_call';
ALTER TABLE enterprises ADD COLUMN push_order_wait_secs BIGINT NOT NULL DEFAULT 10;
-- A call's pending pushes to any target, oldest first.
CREATE INDEX push_deliveries_call ON push_deliveries (enterprise_id, stream_key, event_id) WHERE state = 'pending';
