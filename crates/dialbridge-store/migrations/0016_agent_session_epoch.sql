-- Raised by `admin agent kick`: the event-stream tokens an agent holds carry the epoch they
-- were issued in, and are refused (their sockets closed) once it moves on.
ALTER TABLE agents ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
