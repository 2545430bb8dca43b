-- Registry schema, version 5: artifact garbage collection. `switchyard models gc` removes the
-- artifact files of versions that have been archived longer than a retention and that nothing
-- else needs. The version row, its provenance, events and lineage stay; `collected_at` (RFC 3339
-- UTC with milliseconds) says when its artifact was collected, NULL while it is stored. It is set
-- in the same transaction as the version's `artifact_collected` event, and the file is removed
-- only after that commits. Numbered 0005, not 0004, so it cannot clash with another branch's
-- 0004; sqlx applies a missing lower-numbered migration later without complaint.

ALTER TABLE versions ADD COLUMN collected_at TEXT;
