-- The server's licensed users for automatic user license sync, kept only
-- as GitHub Connect sends them: the SHA-256 of the user's id and of each
-- email address (lowercased, trimmed), as a JSON array. Nothing else of a
-- user is kept.
CREATE TABLE license_users (
    user_hash    TEXT PRIMARY KEY,
    email_hashes TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- What GitHub.com read back after the last upload (one row).
CREATE TABLE license_remote (
    id              INTEGER PRIMARY KEY,
    seats_consumed  BIGINT NOT NULL,
    seats_purchased BIGINT NOT NULL,
    sync_status     TEXT NOT NULL,
    sync_time       BIGINT NOT NULL
);

INSERT INTO license_remote (id, seats_consumed, seats_purchased, sync_status, sync_time) VALUES (1, 0, 0, '', 0);
