-- Credit holds: what each running call may still spend, so that no call spends money the
-- enterprise does not have. Available credit = balance + credit_limit - held.
ALTER TABLE enterprises ADD COLUMN credit_limit BIGINT NOT NULL DEFAULT 0 CHECK (credit_limit >= 0);
-- The sum of the enterprise's rows in credit_holds, kept in the same transactions that change
-- them, so an admission decides on one row with a conditional update.
ALTER TABLE enterprises ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE enterprises ADD COLUMN max_call_minutes BIGINT;

-- One row per running call that costs money, updated in place as it is extended; deleted when
-- the call is settled (in the transaction that writes its CDR's end and its charge).
CREATE TABLE credit_holds (
    unique_id TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    rate_per_minute BIGINT NOT NULL CHECK (rate_per_minute > 0),
    minutes BIGINT NOT NULL CHECK (minutes > 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX credit_holds_by_enterprise ON credit_holds (enterprise_id);
