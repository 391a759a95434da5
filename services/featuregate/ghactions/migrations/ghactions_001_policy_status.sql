-- The enterprise's policy for GitHub.com actions (one row), and how the
-- downloads from GitHub.com last went, for the status pages of every
-- replica (each downloads into its own cache). Times are Unix
-- microseconds, 0 for never. The policy starts as GHES's default: every
-- action allowed (allowed 1).
CREATE TABLE actions_policy (
    id                INTEGER PRIMARY KEY,
    allowed           INTEGER NOT NULL,
    github_owned      INTEGER NOT NULL,
    verified_creators INTEGER NOT NULL,
    patterns          TEXT NOT NULL,
    revision          BIGINT NOT NULL,
    updated_by        TEXT NOT NULL,
    updated_at        BIGINT NOT NULL
);

INSERT INTO actions_policy (id, allowed, github_owned, verified_creators, patterns, revision, updated_by, updated_at)
VALUES (1, 1, 0, 0, '[]', 0, '', 0);

CREATE TABLE actions_status (
    id               INTEGER PRIMARY KEY,
    downloads        BIGINT NOT NULL,
    downloaded_bytes BIGINT NOT NULL,
    last_download    TEXT NOT NULL,
    last_download_at BIGINT NOT NULL,
    last_error       TEXT NOT NULL,
    last_error_at    BIGINT NOT NULL,
    last_refusal     TEXT NOT NULL,
    last_refusal_at  BIGINT NOT NULL
);

INSERT INTO actions_status (id, downloads, downloaded_bytes, last_download, last_download_at, last_error, last_error_at, last_refusal, last_refusal_at)
VALUES (1, 0, 0, '', 0, '', 0, '', 0);
