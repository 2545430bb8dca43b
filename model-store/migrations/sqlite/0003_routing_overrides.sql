-- Registry schema, version 3: routing overrides. When the gateway's guard trips, or an operator
-- promotes, rolls back or sets weights, the routing it serves departs from the config file. The
-- departure is kept here, one row per model, so a restart does not silently bring a bad version
-- back. `config_fingerprint` is a hash of the model's routing as configured when the override
-- was made: once the config's routing for that model changes, the operator has spoken and the
-- override no longer applies (the gateway clears it). Every change of a row is written in the
-- same transaction as the event that explains it.

CREATE TABLE routing_overrides (
    model_id            BIGINT  PRIMARY KEY REFERENCES models (id),
    config_fingerprint  TEXT    NOT NULL,
    -- The routing served instead of the config's, as the gateway's JSON.
    routing_json        TEXT    NOT NULL,
    -- Why: {"kind": "guard_trip" | "operator", ...}, as the gateway's JSON.
    origin_json         TEXT    NOT NULL,
    at                  TEXT    NOT NULL,
    event_id            BIGINT  NOT NULL REFERENCES events (id)
);
