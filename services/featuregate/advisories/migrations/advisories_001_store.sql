-- GitHub.com's reviewed global security advisories, as the gate syncs
-- them. The files of this folder are named advisories_NNN_… so that they
-- never share a name with the gate's own migrations in schema_migrations,
-- which is keyed by file name.

-- The gate's 001 migration makes this table; it is made here too (only if
-- missing) so that the package's tests can run on a database of its own.
-- The gate applies these files after its own, so there it already exists.
CREATE TABLE IF NOT EXISTS revision_counter (
    id       INTEGER PRIMARY KEY,
    revision BIGINT NOT NULL
);

INSERT INTO revision_counter (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- One row per advisory, withdrawn ones included. Times are Unix
-- microseconds; withdrawn_at is 0 unless GitHub withdrew it. revision is
-- the revision of its last change: the rows in revision order are the
-- change feed (an advisory changed twice appears once, at its latest).
CREATE TABLE advisories (
    ghsa_id      TEXT PRIMARY KEY,
    cve_id       TEXT NOT NULL,
    summary      TEXT NOT NULL,
    severity     TEXT NOT NULL,
    cvss_score   DOUBLE PRECISION,
    cvss_vector  TEXT NOT NULL,
    cwes         TEXT NOT NULL,
    html_url     TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    withdrawn_at BIGINT NOT NULL,
    revision     BIGINT NOT NULL
);

CREATE INDEX advisories_by_revision ON advisories (revision);

-- One row per vulnerable range of a package in an advisory, keyed for
-- lookups by (ecosystem, normalized package name). package_name is the
-- name as GitHub spells it.
CREATE TABLE advisory_packages (
    ecosystem        TEXT NOT NULL,
    package          TEXT NOT NULL,
    ghsa_id          TEXT NOT NULL REFERENCES advisories (ghsa_id),
    vulnerable_range TEXT NOT NULL,
    package_name     TEXT NOT NULL,
    first_patched    TEXT NOT NULL,
    PRIMARY KEY (ecosystem, package, ghsa_id, vulnerable_range)
);

CREATE INDEX advisory_packages_by_advisory ON advisory_packages (ghsa_id);

-- The newest updated_at (Unix microseconds) synced in full: an
-- incremental sync starts from there after a restart.
CREATE TABLE advisory_sync_cursor (
    id         INTEGER PRIMARY KEY,
    updated_at BIGINT NOT NULL
);

INSERT INTO advisory_sync_cursor (id, updated_at) VALUES (1, 0);
