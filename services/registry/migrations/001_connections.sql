-- The record is kept as protojson in `record`; the columns beside it exist
-- for lookups, ordering and the constraints the store enforces.
CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL UNIQUE,
    request_hash TEXT NOT NULL,
    state        INTEGER NOT NULL,
    -- "<hostname>|<kind>|<login>" lower-cased while the connection is not
    -- DISCONNECTED, NULL after: at most one active connection per server
    -- and account (NULLs never collide in a unique index).
    active_key   TEXT UNIQUE,
    version      BIGINT NOT NULL,
    create_time  BIGINT NOT NULL,
    record       TEXT NOT NULL
);

CREATE INDEX connections_by_time ON connections (create_time, id);

-- Every change, in revision order: the audit history and the Watch feed.
CREATE TABLE connection_events (
    revision      BIGINT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    event         TEXT NOT NULL
);

CREATE INDEX connection_events_by_connection ON connection_events (connection_id, revision);

-- One row whose update hands out revisions: its row lock orders writers, so
-- revisions become visible in the order they were given and a watcher never
-- skips one that commits late.
CREATE TABLE revision_counter (
    id       INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);

INSERT INTO revision_counter (id, revision) VALUES (1, 0);
