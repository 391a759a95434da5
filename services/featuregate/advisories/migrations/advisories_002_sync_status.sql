-- How the sync last went and when it runs next, for the status pages of
-- every replica (one of them syncs). Times are Unix microseconds, 0 for
-- never; next_run is 0 while the sync is off (Dependabot alerts off, or
-- no connection CONNECTED).
CREATE TABLE advisory_sync_status (
    id            INTEGER PRIMARY KEY,
    connection_id TEXT NOT NULL,
    last_start    BIGINT NOT NULL,
    last_end      BIGINT NOT NULL,
    last_success  BIGINT NOT NULL,
    last_error    TEXT NOT NULL,
    fetched       BIGINT NOT NULL,
    changed       BIGINT NOT NULL,
    failures      INTEGER NOT NULL,
    next_run      BIGINT NOT NULL
);

INSERT INTO advisory_sync_status (id, connection_id, last_start, last_end, last_success, last_error, fetched, changed, failures, next_run)
VALUES (1, '', 0, 0, 0, '', 0, 0, 0, 0);
