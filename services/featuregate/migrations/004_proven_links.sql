-- Links are proven from now on: each comes from the person authorizing the
-- connection's GitHub App on GitHub.com. Links made before were asserted
-- by a caller (LinkAccount) and prove nothing: they are dropped, and their
-- users link again. status: 1 active, 2 reconnect needed.
DELETE FROM gate_links;
ALTER TABLE gate_links ADD COLUMN status INTEGER NOT NULL DEFAULT 1;
