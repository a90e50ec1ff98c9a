-- Phones' registrations, kept so a restarted server reaches registered phones at once. One row
-- per binding (address-of-record + Contact); the set of an AOR's rows is replaced whenever a
-- REGISTER changes it. Times are unix seconds (the registrar's clock).
CREATE TABLE sip_registrations (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Where the REGISTER came from (ip:port), and whether it came over a TCP connection (which
    -- does not survive a restart: such a phone must register again).
    source TEXT NOT NULL,
    over_tcp BIGINT NOT NULL CHECK (over_tcp IN (0, 1)),
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    -- Room for an edge proxy's Path (RFC 3327), unused yet.
    path TEXT,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX sip_registrations_by_expiry ON sip_registrations (expires_at);
