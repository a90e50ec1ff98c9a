-- The number an agent's telephone (reached through a trunk) is shown; NULL: the call's caller id.
ALTER TABLE enterprises ADD COLUMN agent_caller_id TEXT;
