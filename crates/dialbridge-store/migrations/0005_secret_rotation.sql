-- Secret rotation: the previous secret keeps signing beside the new one until it is dropped,
-- so a CRM can switch keys without missing a push.
ALTER TABLE push_targets ADD COLUMN previous_secret_sealed TEXT;
