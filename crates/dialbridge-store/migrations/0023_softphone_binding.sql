-- Phone binding type 3, the softphone (the agent's browser). SQLite cannot change a CHECK, so
-- the table is made again (the same statements on PostgreSQL): rows set aside in a plain copy,
-- the table dropped and created under its own name, the rows put back.
CREATE TABLE agent_phones_kept AS
    SELECT id, agent_id, enterprise_id, phone_type, number, is_bound, created_at FROM agent_phones;
DROP TABLE agent_phones;
CREATE TABLE agent_phones (
    id BIGINT PRIMARY KEY,
    agent_id BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    phone_type BIGINT NOT NULL CHECK (phone_type IN (1, 2, 3, 4)),
    number TEXT NOT NULL,
    is_bound BIGINT NOT NULL CHECK (is_bound IN (0, 1)),
    created_at BIGINT NOT NULL,
    UNIQUE (agent_id, phone_type, number)
);
INSERT INTO agent_phones (id, agent_id, enterprise_id, phone_type, number, is_bound, created_at)
    SELECT id, agent_id, enterprise_id, phone_type, number, is_bound, created_at FROM agent_phones_kept;
DROP TABLE agent_phones_kept;
CREATE UNIQUE INDEX agent_phones_one_bound_per_agent ON agent_phones (agent_id) WHERE is_bound = 1;
CREATE UNIQUE INDEX agent_phones_one_agent_per_phone ON agent_phones (enterprise_id, phone_type, number) WHERE is_bound = 1;
