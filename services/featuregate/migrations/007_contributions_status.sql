-- What the contributions uploader last heard from GitHub.com, per
-- connection, so every replica (and the pages, through
-- GetContributionsStatus) can tell how sending goes, whichever replica
-- holds the uploader's lease. Times are Unix microseconds, 0 for never;
-- last_error is in words (no tokens, no counts).
CREATE TABLE gate_contributions_uploads (
    connection_id TEXT PRIMARY KEY,
    success_time  BIGINT NOT NULL DEFAULT 0,
    failure_time  BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT ''
);

-- When GitHub.com last took something for a user: their counts, or
-- (removed = 1) the delete of everything sent for them.
CREATE TABLE gate_contributions_sent (
    connection_id TEXT NOT NULL,
    user_login    TEXT NOT NULL,
    sent_time     BIGINT NOT NULL,
    removed       INTEGER NOT NULL,
    PRIMARY KEY (connection_id, user_login)
);

-- A person's page reads what of theirs waits (GetContributionsStatus)
-- every few seconds while open: without this, each read would scan the
-- connection's outbox.
CREATE INDEX gate_outbox_by_user ON gate_outbox (connection_id, user_login);
