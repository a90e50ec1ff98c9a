-- How a restarted server ends each leg a crashed one left up: the request (a CANCEL while the
-- leg rings, a BYE once it answered) as SIP text, and where to send it. Written with the call's
-- progress; deleted when the call is closed.
CREATE TABLE leg_endings (
    unique_id TEXT NOT NULL,
    leg TEXT NOT NULL CHECK (leg IN ('agent', 'customer')),
    request TEXT NOT NULL,
    destination TEXT NOT NULL,
    over_tcp BIGINT NOT NULL CHECK (over_tcp IN (0, 1)),
    PRIMARY KEY (unique_id, leg)
);
