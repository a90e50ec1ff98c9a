-- Trunk order for failover (ascending, then by name), keepalive OPTIONS interval and the
-- registration interval asked of the carrier (seconds; 0 = off), and the addresses the carrier
-- sends from (comma-separated addresses or ranges; '' = where its requests go).
ALTER TABLE trunks ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trunks ADD COLUMN keepalive_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trunks ADD COLUMN register_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE trunks ADD COLUMN sources TEXT NOT NULL DEFAULT '';
