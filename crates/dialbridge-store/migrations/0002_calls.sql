-- Runtime state of agents, call detail records and refused requests.

-- One row per agent. `version` makes every change a compare-and-set, which is the outbound
-- lock: of several requests racing for one agent, one update matches and the others do not.
-- after_call: 'online' or 'pause:<reason>'.
CREATE TABLE agent_runtime (
    agent_id BIGINT PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    login_status TEXT NOT NULL CHECK (login_status IN ('offline', 'online', 'pause')),
    pause_description TEXT,
    after_call TEXT NOT NULL,
    wrapup_until BIGINT,
    call_unique_id TEXT,
    call_phase TEXT CHECK (call_phase IN ('setup', 'connected')),
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO agent_runtime (agent_id, login_status, after_call, version, updated_at)
    SELECT id, 'offline', 'online', 0, 0 FROM agents;

-- One row per accepted preview outcall, written at acceptance (ended_at NULL while the call
-- runs, so a restart finds the calls it must close) and completed when the call ends.
CREATE TABLE cdrs (
    unique_id TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    agent_id BIGINT NOT NULL,
    cno TEXT NOT NULL,
    agent_phone TEXT NOT NULL,
    agent_phone_type BIGINT NOT NULL,
    customer_number TEXT NOT NULL,
    customer_area_code TEXT,
    customer_number_type BIGINT,
    caller_id TEXT NOT NULL,
    trunk_name TEXT NOT NULL,
    user_field TEXT NOT NULL,
    node TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    agent_ringing_at BIGINT,
    agent_answered_at BIGINT,
    customer_ringing_at BIGINT,
    bridged_at BIGINT,
    ended_at BIGINT,
    status BIGINT,
    end_reason TEXT,
    hung_up_by TEXT,
    sip_cause BIGINT,
    agent_sip_code BIGINT,
    customer_sip_code BIGINT,
    bridge_seconds BIGINT,
    cost BIGINT,
    packets_agent_to_customer BIGINT,
    packets_customer_to_agent BIGINT
);
CREATE INDEX cdrs_by_enterprise_time ON cdrs (enterprise_id, requested_at);
CREATE INDEX cdrs_by_customer ON cdrs (enterprise_id, customer_number, requested_at);
CREATE INDEX cdrs_open ON cdrs (ended_at);

-- Every refused PreviewOutcall, so an operator can answer "why did this CRM get res 7?".
CREATE TABLE refused_requests (
    id BIGINT PRIMARY KEY,
    enterprise_id BIGINT,
    cno TEXT,
    customer_number TEXT,
    res TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX refused_requests_by_enterprise ON refused_requests (enterprise_id, at);
