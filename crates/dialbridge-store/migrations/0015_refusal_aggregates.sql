-- Refused requests are bounded: one row per refusal only after authentication; before it
-- (bad parameters, unknown agent, wrong password: what anyone can send) one row per
-- (enterprise or none, source, well-formed cno or none, res, minute), counted. `bucket` names
-- that aggregate (NULL for a row of its own); `last_at` is its latest refusal.
ALTER TABLE refused_requests ADD COLUMN source TEXT;
ALTER TABLE refused_requests ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE refused_requests ADD COLUMN last_at BIGINT;
ALTER TABLE refused_requests ADD COLUMN bucket TEXT;
CREATE UNIQUE INDEX refused_requests_by_bucket ON refused_requests (bucket);
