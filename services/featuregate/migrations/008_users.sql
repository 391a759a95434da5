-- The server's users: people with an account on this server, known from
-- their signing in (the gateway registers each person who does) or from
-- an admin's RegisterUsers. ReportContributions takes counts only of
-- them, so a count for a login the server has no account for is refused.
-- first_time is Unix microseconds.
CREATE TABLE gate_users (
    user_login TEXT PRIMARY KEY,
    first_time BIGINT NOT NULL
);

-- Everyone the gate already knew of before this table: people who linked
-- an account or chose a feature, and those whose counts were already
-- taken, so a running contribution source is not refused after the
-- upgrade for people it reported before.
INSERT INTO gate_users (user_login, first_time)
SELECT user_login, 0 FROM gate_links
UNION SELECT user_login, 0 FROM gate_consents
UNION SELECT user_login, 0 FROM gate_contributions;
