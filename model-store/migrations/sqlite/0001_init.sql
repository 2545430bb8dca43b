-- Registry schema, version 1: models, versions, provenance, aliases and events.
--
-- Portable by design: a PostgreSQL twin of this file (migrations/postgres/, not written yet)
-- differs only in the id columns: `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` there,
-- SQLite's `INTEGER PRIMARY KEY` (an alias of the rowid) here. Every other integer is BIGINT
-- and is read as i64 on both. Timestamps are TEXT, RFC 3339 UTC with milliseconds (`*_at`),
-- plus unix milliseconds (`*_ms`) where rows are ordered or ranged by time. JSON is TEXT.
-- Versions and events are never deleted, so their ids are never reused. Migration 0002 will
-- add lineage records.

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);

CREATE TABLE versions (
    id              INTEGER PRIMARY KEY,
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    -- 1, 2, 3, … per model, assigned as max + 1 inside the registering transaction.
    number          BIGINT  NOT NULL CHECK (number >= 1),
    sha256          TEXT    NOT NULL CHECK (length(sha256) = 64),
    size            BIGINT  NOT NULL CHECK (size >= 0),
    signature_json  TEXT    NOT NULL,
    stage           TEXT    NOT NULL CHECK (stage IN ('staging', 'production', 'archived')),
    created_at      TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    UNIQUE (model_id, number),
    -- The same bytes are one version per model: registering them again returns that version.
    UNIQUE (model_id, sha256)
);

CREATE TABLE provenance (
    version_id     BIGINT  PRIMARY KEY REFERENCES versions (id),
    manifest_json  TEXT    NOT NULL
);

CREATE TABLE aliases (
    model_id    BIGINT  NOT NULL REFERENCES models (id),
    name        TEXT    NOT NULL,
    version_id  BIGINT  NOT NULL REFERENCES versions (id),
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (model_id, name)
);

CREATE INDEX aliases_version ON aliases (version_id);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    -- NULL for model-level events; otherwise must name an existing version of the model.
    version_number  BIGINT,
    kind            TEXT    NOT NULL,
    detail_json     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    at_ms           BIGINT  NOT NULL,
    FOREIGN KEY (model_id, version_number) REFERENCES versions (model_id, number)
);

CREATE INDEX events_model_time ON events (model_id, at_ms);
