-- Call recording (the legacy contract's §7): which calls are recorded, per enterprise and
-- per agent ('off', 'bridge': from the customer's answer, 'answer': from the agent's), the
-- longest recording, how long recordings are kept (NULL: until deleted), and whether
-- recordFile carries the bare name or the download URL.
ALTER TABLE enterprises ADD COLUMN recording TEXT NOT NULL DEFAULT 'off';
ALTER TABLE enterprises ADD COLUMN recording_max_minutes BIGINT NOT NULL DEFAULT 240;
ALTER TABLE enterprises ADD COLUMN recording_retention_days BIGINT;
ALTER TABLE enterprises ADD COLUMN record_file_form TEXT NOT NULL DEFAULT 'name';
ALTER TABLE agents ADD COLUMN recording TEXT;

-- A CDR's recordFile: empty when the call was not recorded.
ALTER TABLE cdrs ADD COLUMN record_file TEXT NOT NULL DEFAULT '';

-- One row per call planned to be recorded, written with the call's CDR: 'planned' until the
-- call ends (a restart finds the file a crash left open through it), then 'kept' with what
-- the file holds, or deleted when the call never reached the recording; 'deleted' once the
-- file is gone (by retention or an operator: never silently).
CREATE TABLE recordings (
    unique_id TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL,
    day TEXT NOT NULL,
    file_name TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    frames BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    gaps BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    deleted_at BIGINT,
    deleted_by TEXT,
    delete_reason TEXT,
    -- Since when the running call's recording is paused (NULL: it is not), so a toolbar that
    -- reloads during the call shows it.
    paused_since BIGINT
);
CREATE INDEX recordings_by_age ON recordings (enterprise_id, state, created_at);

-- Who downloaded or deleted which recording, and when.
CREATE TABLE recording_access (
    id BIGINT PRIMARY KEY,
    unique_id TEXT NOT NULL,
    enterprise_id BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX recording_access_by_recording ON recording_access (unique_id, at);

-- The consent announcement an enterprise plays before the bridge: 8 kHz mono 16-bit samples,
-- little-endian, base64 (one text type on both databases).
CREATE TABLE recording_announcements (
    enterprise_id BIGINT PRIMARY KEY,
    samples TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
