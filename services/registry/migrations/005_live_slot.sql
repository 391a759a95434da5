-- One live connection per server, as on GitHub Enterprise Server: a
-- connection that is PENDING, CONNECTED or DISCONNECTING holds the slot
-- (live_slot = 1) and gives it back (NULL) when it is DISCONNECTED. The
-- unique index lets one row hold it, on SQLite and PostgreSQL alike (NULLs
-- never collide), so two CreateConnection calls racing, in one replica or
-- in two, leave one live connection whatever the Go code checked first.
ALTER TABLE connections ADD COLUMN live_slot INTEGER;

-- A database from before this rule may hold several live connections. A
-- unique index over them would fail, and disconnecting some of them here
-- would revoke an account's tokens behind the admin's back. So the newest
-- live one takes the slot (it is the one the admin page showed), and the
-- others stay live without it: they keep working until an admin disables
-- them from the admin page, which lists them. The registry refuses a new
-- connection while any connection is live, slot or not.
UPDATE connections SET live_slot = 1 WHERE id = (
    SELECT id FROM connections WHERE state IN (1, 2, 3) ORDER BY create_time DESC, id DESC LIMIT 1
);

CREATE UNIQUE INDEX connections_one_live ON connections (live_slot);
