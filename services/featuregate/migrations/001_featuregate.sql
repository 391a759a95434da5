-- What the gate knows of each connection, mirrored from the registry's
-- Watch stream: whether it is CONNECTED and the App's permissions.
CREATE TABLE gate_connections (
    connection_id TEXT PRIMARY KEY,
    connected     INTEGER NOT NULL,
    permissions   TEXT NOT NULL
);

-- The registry revision applied last, so the mirror resumes where it was.
CREATE TABLE gate_registry_cursor (
    id       INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);

INSERT INTO gate_registry_cursor (id, revision) VALUES (1, 0);

-- Feature settings of a connection (protojson of Settings, etag aside).
CREATE TABLE gate_settings (
    connection_id TEXT PRIMARY KEY,
    version       BIGINT NOT NULL,
    settings      TEXT NOT NULL
);

CREATE TABLE gate_consents (
    connection_id TEXT NOT NULL,
    user_login    TEXT NOT NULL,
    feature       INTEGER NOT NULL,
    opted_in      INTEGER NOT NULL,
    update_time   BIGINT NOT NULL,
    PRIMARY KEY (connection_id, user_login, feature)
);

CREATE TABLE gate_links (
    connection_id TEXT NOT NULL,
    user_login    TEXT NOT NULL,
    github_login  TEXT NOT NULL,
    github_id     BIGINT NOT NULL,
    link_time     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, user_login)
);

-- One GitHub.com account links to at most one server user per connection.
CREATE UNIQUE INDEX gate_links_github_id ON gate_links (connection_id, github_id);

-- Every change: the audit trail (who, when, from what to what) and the
-- Watch feed (snapshot: the connection's effective settings after it).
CREATE TABLE gate_events (
    revision      BIGINT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    event_time    BIGINT NOT NULL,
    detail        TEXT NOT NULL,
    snapshot      TEXT NOT NULL
);

CREATE INDEX gate_events_by_connection ON gate_events (connection_id, revision);

CREATE TABLE revision_counter (
    id       INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);

INSERT INTO revision_counter (id, revision) VALUES (1, 0);
