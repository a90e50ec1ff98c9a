-- Fields the legacy agent-management interface reads and writes and nothing else uses:
-- power (0 normal agent, 1 monitor) and clientType (1 phone agent, 2 PC agent).
ALTER TABLE agents ADD COLUMN legacy_power BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN legacy_client_type BIGINT NOT NULL DEFAULT 1;
