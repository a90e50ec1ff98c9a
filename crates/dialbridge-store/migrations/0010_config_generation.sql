-- A counter every configuration write raises in its own transaction (not balance changes, not
-- runtime state), so a server that keeps its configuration in memory knows, with one row read,
-- whether what it holds is still current, even when `dialbridge admin` changed it.
CREATE TABLE config_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO config_generation (id, generation) VALUES (1, 0);
