-- Registry schema, version 7: what running gateways serve. Each gateway process (a replica)
-- keeps one row per version it serves, with the roles it serves it in, written whenever its
-- serving state changes and renewed on a heartbeat; a row past `expires_at_ms` is no longer a
-- claim (its replica stopped or died). Commands that would retire a version (archive it, remove
-- the alias it is served by) read these rows and refuse while the version is served.

CREATE TABLE serving (
    replica         TEXT    NOT NULL,
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    version_number  BIGINT  NOT NULL,
    -- Comma-separated: champion, challenger, shadow, backup, loaded (pinned access only).
    roles           TEXT    NOT NULL,
    expires_at_ms   BIGINT  NOT NULL,
    PRIMARY KEY (replica, model_id, version_number)
);
