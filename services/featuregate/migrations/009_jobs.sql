-- What the scheduled uploads need of a connection besides what 001 keeps:
-- the kind of GitHub.com account (license sync is for enterprises) and
-- the server's hostname and version (they name the server to GitHub.com).
ALTER TABLE gate_connections ADD COLUMN account_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE gate_connections ADD COLUMN server_hostname TEXT NOT NULL DEFAULT '';
ALTER TABLE gate_connections ADD COLUMN server_version TEXT NOT NULL DEFAULT '';

-- How each scheduled job (license sync, server statistics) last went and
-- when it runs next, for the status pages of every replica (one runs
-- each job). Times are Unix microseconds, 0 for never; next_run is 0
-- while the job is off.
CREATE TABLE gate_job_status (
    name          TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    last_start    BIGINT NOT NULL,
    last_end      BIGINT NOT NULL,
    last_success  BIGINT NOT NULL,
    last_error    TEXT NOT NULL,
    last_result   TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    next_run      BIGINT NOT NULL
);
