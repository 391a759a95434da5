-- The registry's etag of the connection record the gate mirrored last, so
-- a reader of the settings can tell whether they already follow a change
-- it just made in the registry (a Refresh permissions, say).
ALTER TABLE gate_connections ADD COLUMN registry_etag TEXT NOT NULL DEFAULT '';
