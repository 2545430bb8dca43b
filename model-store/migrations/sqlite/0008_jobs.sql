-- Registry schema, version 8: prediction jobs. A batch run of one version over a data set is
-- recorded as a lineage record of its own kind: which version (and artifact) produced which
-- output from which input, with what settings, and how far it got. `rows_done` is advanced only
-- after the output up to that row is on disk, so an interrupted job resumes from it.

CREATE TABLE jobs (
    id              TEXT    PRIMARY KEY,
    model_id        BIGINT  NOT NULL REFERENCES models (id),
    version_number  BIGINT  NOT NULL,
    sha256          TEXT    NOT NULL,
    input_uri       TEXT    NOT NULL,
    input_sha256    TEXT    NOT NULL,
    input_rows      BIGINT  NOT NULL,
    pipeline_json   TEXT,
    runtime_json    TEXT    NOT NULL,
    output_uri      TEXT    NOT NULL,
    output_sha256   TEXT,
    -- running, succeeded, failed
    status          TEXT    NOT NULL,
    rows_done       BIGINT  NOT NULL,
    failed_rows_json TEXT   NOT NULL,
    started_at      TEXT    NOT NULL,
    started_ms      BIGINT  NOT NULL,
    finished_at     TEXT,
    error           TEXT
);
CREATE INDEX jobs_model ON jobs (model_id, started_ms);
