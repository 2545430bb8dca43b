-- Registry schema, version 9: remote versions, slices, and the gateway that answered.
--
-- Remote versions are answered by another v2 server. A remote version's artifact is its
-- upstream written as canonical JSON (see `model_store::Upstream`), so its sha256 names which
-- server and model answer; `upstream_json` holds the same object for listing without reading the
-- artifact. NULL for a model file.
ALTER TABLE versions ADD COLUMN upstream_json TEXT;

-- A model with `[model.slices]` names each request's slice (a market, a device class: the value
-- of a request header); feedback keeps the slice of the record it judged, so per-slice online
-- accuracy is one grouped read.
ALTER TABLE feedback ADD COLUMN slice TEXT;
CREATE INDEX feedback_model_version_slice ON feedback (model, version, slice);

-- A lineage record gains three elements after migration 0006's fourteen, each JSON null or
-- absent (records written before) when it does not apply:
--   14 `upstream`: for a run of a remote version, the upstream it was sent to and the version
--      that upstream says answered (`{"url": …, "model": …, "version": …}`);
--   15 `slice`: the request's slice value as sent (at most 128 characters);
--   16 `replica`: the gateway that answered (`[server] replica_id`, by default `host:pid`).
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
       r.value ->> 15                                          AS slice,
       r.value ->> 16                                          AS replica
FROM lineage_batches AS b, json_each(b.body) AS r;
