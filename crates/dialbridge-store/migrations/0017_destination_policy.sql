-- An enterprise's destination policy (toll fraud) and per-destination rates. Existing
-- enterprises get the safe default: domestic numbers only, every minute at rate_per_minute.
ALTER TABLE enterprises ADD COLUMN allowed_countries TEXT NOT NULL DEFAULT '';
ALTER TABLE enterprises ADD COLUMN allowed_classes TEXT NOT NULL DEFAULT '';
-- PREFIX=PRICE pairs (ten-thousandths written as decimals), replaced as a whole with the
-- other settings.
ALTER TABLE enterprises ADD COLUMN destination_rates TEXT NOT NULL DEFAULT '';
