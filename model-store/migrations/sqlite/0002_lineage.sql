-- Registry schema, version 2: per-request lineage. One row per model run of a request: the
-- primary (the run that answered) and any shadow runs, with the route taken and why, timings,
-- the HTTP status and, for shadows, how they compared with the primary.
--
-- `model` and `version` are plain values, NOT foreign keys to `versions`: writing lineage never
-- waits on or fails for a registry row, and a record outlives the archival (or any future
-- removal) of the version it names. Readers join to the registry by (model name, version number)
-- and must expect no match.
--
-- Portable as 0001 is: only the id column differs on PostgreSQL; every other integer is BIGINT
-- and read as i64 (`version` and `status` too, which fit INTEGER, so one Rust type reads all).
-- `at` is RFC 3339 UTC with milliseconds, `at_ms` the same instant in unix milliseconds; rows
-- are ranged and ordered by `at_ms`. Rows are append-only.

CREATE TABLE lineage (
    id               INTEGER PRIMARY KEY,
    request_id       TEXT    NOT NULL,
    at               TEXT    NOT NULL,
    at_ms            BIGINT  NOT NULL,
    model            TEXT    NOT NULL,
    version          BIGINT  NOT NULL,
    sha256           TEXT    NOT NULL,
    -- champion | challenger | backup | pinned | shadow | default. Not constrained here: a new
    -- route must not need a migration, and a refused row would cost its whole batch.
    route            TEXT    NOT NULL,
    -- Why that route, for people: "weight bucket 37 of 100", "pinned by path", …
    reason           TEXT    NOT NULL,
    sticky_key_hash  TEXT,
    input_sha256     TEXT,
    queue_us         BIGINT  NOT NULL CHECK (queue_us >= 0),
    compute_us       BIGINT  NOT NULL CHECK (compute_us >= 0),
    total_us         BIGINT  NOT NULL CHECK (total_us >= 0),
    -- The HTTP status the run ended with.
    status           BIGINT  NOT NULL CHECK (status BETWEEN 100 AND 599),
    error_class      TEXT,
    -- Shadow runs only: the primary's version number, as text.
    shadow_of        TEXT,
    -- Shadow runs only: comparison figures with the primary, JSON.
    comparison_json  TEXT
);

CREATE INDEX lineage_request ON lineage (request_id);
CREATE INDEX lineage_model_version_time ON lineage (model, version, at_ms);
CREATE INDEX lineage_time ON lineage (at_ms);
