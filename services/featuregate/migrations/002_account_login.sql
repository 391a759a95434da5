-- The connected GitHub.com account, so unified search keeps private results
-- to repositories that account owns.
ALTER TABLE gate_connections ADD COLUMN account_login TEXT NOT NULL DEFAULT '';
