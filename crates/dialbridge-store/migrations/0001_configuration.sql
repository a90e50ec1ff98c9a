-- The operator-configured model: enterprises and what belongs to them.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Integers are BIGINT, flags are
-- BIGINT 0/1 and times are unix milliseconds, so that one row decoder serves both databases.

CREATE TABLE id_sequences (
    name TEXT PRIMARY KEY,
    next_value BIGINT NOT NULL
);

CREATE TABLE enterprises (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'closed')),
    time_zone TEXT NOT NULL,
    balance BIGINT NOT NULL DEFAULT 0,
    rate_per_minute BIGINT NOT NULL CHECK (rate_per_minute >= 0),
    outbound_enabled BIGINT NOT NULL CHECK (outbound_enabled IN (0, 1)),
    interface_enabled BIGINT NOT NULL CHECK (interface_enabled IN (0, 1)),
    default_caller_id TEXT,
    sync_default BIGINT NOT NULL CHECK (sync_default IN (0, 1)),
    agent_ring_timeout_secs BIGINT NOT NULL,
    customer_ring_timeout_secs BIGINT NOT NULL,
    wrapup_secs BIGINT NOT NULL,
    number_limit_count BIGINT,
    number_limit_window_minutes BIGINT,
    concurrency_cap BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- md5(admin password) is needed in clear by the legacy seed scheme, so it is sealed
-- (encrypted with the server's key), not hashed.
CREATE TABLE enterprise_admins (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    user_name TEXT NOT NULL,
    password_md5_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, user_name)
);

-- password_hash: argon2id of md5(login password); NULL = no password yet, cannot log in.
CREATE TABLE agents (
    id BIGINT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    cno TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT,
    active BIGINT NOT NULL CHECK (active IN (0, 1)),
    outbound_allowed BIGINT NOT NULL CHECK (outbound_allowed IN (0, 1)),
    call_power TEXT NOT NULL CHECK (call_power IN ('all', 'national', 'local', 'internal')),
    area_code TEXT,
    wrapup_secs BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (enterprise_id, cno)
);

-- Runtime: the phones an agent has used; at most one bound per agent, and a phone bound to
-- one agent at a time.
CREATE TABLE agent_phones (
    id BIGINT PRIMARY KEY,
    agent_id BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    phone_type BIGINT NOT NULL CHECK (phone_type IN (1, 2, 4)),
    number TEXT NOT NULL,
    is_bound BIGINT NOT NULL CHECK (is_bound IN (0, 1)),
    created_at BIGINT NOT NULL,
    UNIQUE (agent_id, phone_type, number)
);
CREATE UNIQUE INDEX agent_phones_one_bound_per_agent ON agent_phones (agent_id) WHERE is_bound = 1;
CREATE UNIQUE INDEX agent_phones_one_agent_per_phone ON agent_phones (enterprise_id, phone_type, number) WHERE is_bound = 1;

CREATE TABLE extensions (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    number TEXT NOT NULL,
    sip_password_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, number)
);

CREATE TABLE trunks (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port BIGINT NOT NULL,
    transport TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    auth_username TEXT,
    auth_password_sealed TEXT,
    outbound_proxy TEXT,
    max_channels BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE trunk_enterprises (
    trunk_name TEXT NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    PRIMARY KEY (trunk_name, enterprise_id)
);

-- A caller id number belongs to exactly one enterprise, hence the global primary key.
CREATE TABLE caller_ids (
    number TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    trunk_name TEXT NOT NULL REFERENCES trunks (name),
    created_at BIGINT NOT NULL
);
CREATE INDEX caller_ids_by_enterprise ON caller_ids (enterprise_id);

CREATE TABLE blacklist_entries (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    pattern TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, pattern)
);

-- name_mapping: JSON array of [crm_name, variable] pairs; empty array = legacy names.
CREATE TABLE push_targets (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    name TEXT NOT NULL,
    push_type TEXT NOT NULL CHECK (push_type IN ('hangup', 'bridge', 'agent_status', 'ringing')),
    url TEXT NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('post', 'get')),
    timeout_ms BIGINT NOT NULL,
    retries BIGINT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('legacy', 'json')),
    name_mapping TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (enterprise_id, name)
);

-- Money movements: one row per top-up (and, later, per call charge).
CREATE TABLE balance_ledger (
    id BIGINT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('top_up', 'call_charge', 'adjustment')),
    reference TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX balance_ledger_by_enterprise ON balance_ledger (enterprise_id, created_at);
