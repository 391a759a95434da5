-- Single-use states of the App-manifest and installation redirects, kept
-- as SHA-256 so the table holds nothing a browser could replay.
CREATE TABLE redirect_states (
    state_sha256  TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    expires       BIGINT NOT NULL,
    used          INTEGER NOT NULL
);
