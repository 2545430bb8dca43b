-- Registry schema, version 10: slices. A model with `[model.slices]` names each request's slice
-- (a market, a device class: the value of a request header), so quality can be read per slice.
--
-- A lineage record gains a 16th element, `slice` (the header's value as sent, at most 128
-- characters; JSON null or absent otherwise), and feedback keeps the slice of the record it
-- judged, so per-slice online accuracy is one grouped read.
ALTER TABLE feedback ADD COLUMN slice TEXT;
CREATE INDEX feedback_model_version_slice ON feedback (model, version, slice);

DROP VIEW lineage;
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
       r.value ->> 13                                          AS prediction_json,
       r.value ->> 14                                          AS upstream_json,
       r.value ->> 15                                          AS slice
FROM lineage_batches AS b, json_each(b.body) AS r;
