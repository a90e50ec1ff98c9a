-- When a running bridged call was last known to be up (its heartbeat), so that a restart after
-- a crash bills it up to then rather than up to the bridge.
ALTER TABLE cdrs ADD COLUMN alive_at BIGINT;
