-- The server's aggregate counts for Server Statistics: the latest report
-- of each day (UTC), as the protojson of ServerStatistics. Totals only.
CREATE TABLE server_stats_reports (
    day         TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    reported_at BIGINT NOT NULL
);

-- What GitHub.com read back after the last upload (one row).
CREATE TABLE server_stats_remote (
    id        INTEGER PRIMARY KEY,
    days      BIGINT NOT NULL,
    last_date TEXT NOT NULL
);

INSERT INTO server_stats_remote (id, days, last_date) VALUES (1, 0, '');
