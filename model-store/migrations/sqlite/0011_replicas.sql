-- Registry schema, version 11: every lineage record says which gateway answered it. A record
-- gains a 17th element, `replica` (`[server] replica_id`, by default `host:pid`); absent from
-- records written before.

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
