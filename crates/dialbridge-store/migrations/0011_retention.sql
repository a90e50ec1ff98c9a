-- Retention: the sweeper deletes old rows oldest first in small batches, by time.
CREATE INDEX push_events_by_time ON push_events (created_at);
CREATE INDEX cdrs_by_time ON cdrs (requested_at);
CREATE INDEX refused_requests_by_time ON refused_requests (at);

-- How far deletion has gone: the highest outbox event id swept, so the live event stream can
-- tell a client that asks to replay from before it that events are missing.
CREATE TABLE retention_marks (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO retention_marks (name, value) VALUES ('push_events', 0);
