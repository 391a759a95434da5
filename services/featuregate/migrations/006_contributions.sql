-- Unified contributions. Daily contribution counts the server reports
-- (ReportContributions), per connection, server user and UTC day
-- (YYYY-MM-DD): the latest count wins. Counts only, never content.
CREATE TABLE gate_contributions (
    connection_id TEXT NOT NULL,
    user_login    TEXT NOT NULL,
    day           TEXT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (connection_id, user_login, day)
);

-- The outbox: what must reach GitHub.com, kept until GitHub.com confirms
-- it. A row sets the count of a GitHub.com user (github_id) on a day, so a
-- resend never counts twice; day '' deletes everything this connection
-- sent for that user. A newer count of the same day replaces a queued one.
-- seq orders the rows (a delete before the counts queued after it) and
-- tells a row confirmed from one replaced meanwhile.
CREATE TABLE gate_outbox (
    connection_id TEXT NOT NULL,
    github_id     BIGINT NOT NULL,
    day           TEXT NOT NULL,
    count         BIGINT NOT NULL,
    user_login    TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (connection_id, github_id, day)
);

CREATE INDEX gate_outbox_by_seq ON gate_outbox (connection_id, seq);

-- Hands out outbox sequence numbers. Taking one locks the row, which
-- orders every change of counts, consents and links that touches the
-- outbox: a count reported while its user opts out is either queued before
-- the opt-out (and dropped by it) or sees the opt-out (and is not queued).
CREATE TABLE gate_outbox_seq (
    id  INTEGER PRIMARY KEY,
    seq BIGINT NOT NULL
);

INSERT INTO gate_outbox_seq (id, seq) VALUES (1, 0);
