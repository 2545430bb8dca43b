-- Registry schema, version 4: online feedback. Ground truth that arrives after a prediction is
-- joined to the request's lineage record, so the registry knows which version made each
-- prediction and how it fared.
--
-- `lineage.prediction_json`: a compact summary of what the primary run predicted (e.g.
-- {"label": 3} for a class vector, {"value": 0.42} for a score), written with the record so
-- feedback can be judged without keeping outputs.
ALTER TABLE lineage ADD COLUMN prediction_json TEXT;

-- One row per request that received feedback: a request's truth is given once; a repeat is
-- refused by the unique key (so duplicates never count twice). `correct` is set for labels and
-- outcomes (0/1), `abs_error` / `sq_error` for values. Like lineage, `model`/`version` are plain
-- values, not foreign keys.
CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    model       TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('label', 'value', 'outcome')),
    truth_json  TEXT    NOT NULL,
    correct     BIGINT  CHECK (correct IN (0, 1)),
    abs_error   DOUBLE PRECISION,
    sq_error    DOUBLE PRECISION,
    at          TEXT    NOT NULL,
    at_ms       BIGINT  NOT NULL
);
CREATE INDEX feedback_model_version_time ON feedback (model, version, at_ms);
