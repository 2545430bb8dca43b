-- Registry schema, version 6: lineage is stored a batch to a row.
--
-- Until 0005 every lineage record was a row of `lineage` with three secondary indexes: four
-- B-tree inserts per request, which made SQLite the largest part of what lineage cost a busy
-- gateway (about 8.5 µs of CPU per record, against about 3 µs stored this way). Now the writer
-- stores each batch's records of one (model, version, artifact) as ONE row of `lineage_batches`
-- whose `body` is a JSON array with one array per record, plus one narrow row per request id in
-- `lineage_requests` so a request is still found by one index lookup.
--
-- `lineage` is now a VIEW with the columns the table had (and `id`, in write order), so SQL
-- written against the old table, an operator's included, reads the same rows.
--
-- A record in `body` is, in this order:
--   [request_id, at_ms, route, reason, sticky_key_hash, input_sha256, queue_us, compute_us,
--    total_us, status, error_class, shadow_of, comparison, prediction]
-- with JSON null for an absent value, `shadow_of` a number, and `comparison` / `prediction` JSON
-- objects. `at` (RFC 3339 UTC, milliseconds) is derived from `at_ms`. Each batch row holds at
-- most 2^20 records (the writer holds far fewer), so `(id << 20) + position` orders the view's
-- rows as they were written.
--
-- `first_ms` / `last_ms` bound the batch's `at_ms` (a batch's records are not in time order:
-- they are written as they finish), so time ranges skip batches without reading them;
-- `records` / `shadow_records` count without reading them.

CREATE TABLE lineage_batches (
    id              INTEGER PRIMARY KEY,
    model           TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    sha256          TEXT    NOT NULL,
    first_ms        BIGINT  NOT NULL,
    last_ms         BIGINT  NOT NULL CHECK (last_ms >= first_ms),
    records         BIGINT  NOT NULL CHECK (records BETWEEN 1 AND 1048576),
    shadow_records  BIGINT  NOT NULL CHECK (shadow_records BETWEEN 0 AND records),
    body            TEXT    NOT NULL
);
CREATE INDEX lineage_batches_model_version_time ON lineage_batches (model, version, last_ms);
CREATE INDEX lineage_batches_time ON lineage_batches (last_ms);

-- Which batches hold a request's records (its primary, and shadow runs in other batches). A
-- request id repeated in one batch (a client reusing its own id) is one row.
CREATE TABLE lineage_requests (
    request_id  TEXT    NOT NULL,
    batch_id    INTEGER NOT NULL,
    PRIMARY KEY (request_id, batch_id)
) WITHOUT ROWID;

-- The rows written under schema 2–5: per (model, version, artifact), runs of 1024 rows in
-- their old order, each run a batch row (as a writer's batch would be; never more than 2^20).
CREATE TEMP TABLE lineage_chunks AS
SELECT id, (ROW_NUMBER() OVER (PARTITION BY model, version, sha256 ORDER BY id) - 1) / 1024 AS chunk
FROM lineage;

INSERT INTO lineage_batches (model, version, sha256, first_ms, last_ms, records, shadow_records, body)
SELECT l.model, l.version, l.sha256, MIN(l.at_ms), MAX(l.at_ms), COUNT(*), SUM(l.route = 'shadow'),
       json_group_array(
           json_array(l.request_id, l.at_ms, l.route, l.reason, l.sticky_key_hash, l.input_sha256,
                      l.queue_us, l.compute_us, l.total_us, l.status, l.error_class,
                      CAST(l.shadow_of AS INTEGER), json(l.comparison_json), json(l.prediction_json))
           ORDER BY l.id)
FROM lineage AS l JOIN lineage_chunks AS c ON c.id = l.id
GROUP BY l.model, l.version, l.sha256, c.chunk
ORDER BY MIN(l.id);

-- The batch rows just made, numbered per (model, version, artifact) in id order: the chunks.
INSERT OR IGNORE INTO lineage_requests (request_id, batch_id)
SELECT l.request_id, b.id
FROM lineage AS l
JOIN lineage_chunks AS c ON c.id = l.id
JOIN (SELECT id, model, version, sha256,
             ROW_NUMBER() OVER (PARTITION BY model, version, sha256 ORDER BY id) - 1 AS chunk
      FROM lineage_batches) AS b
  ON b.model = l.model AND b.version = l.version AND b.sha256 = l.sha256 AND b.chunk = c.chunk;

DROP TABLE lineage_chunks;
DROP TABLE lineage;

CREATE VIEW lineage AS
SELECT (b.id << 20) + r.key                                    AS id,
       r.value ->> 0                                           AS request_id,
       strftime('%Y-%m-%dT%H:%M:%S', (r.value ->> 1) / 1000, 'unixepoch')
           || printf('.%03dZ', (r.value ->> 1) % 1000)         AS at,
       r.value ->> 1                                           AS at_ms,
       b.model                                                 AS model,
       b.version                                               AS version,
       b.sha256                                                AS sha256,
       r.value ->> 2                                           AS route,
       r.value ->> 3                                           AS reason,
       r.value ->> 4                                           AS sticky_key_hash,
       r.value ->> 5                                           AS input_sha256,
       r.value ->> 6                                           AS queue_us,
       r.value ->> 7                                           AS compute_us,
       r.value ->> 8                                           AS total_us,
       r.value ->> 9                                           AS status,
       r.value ->> 10                                          AS error_class,
       CAST(r.value ->> 11 AS TEXT)                            AS shadow_of,
       r.value ->> 12                                          AS comparison_json,
       r.value ->> 13                                          AS prediction_json
FROM lineage_batches AS b, json_each(b.body) AS r;
