-- The person who started a redirect (signed in through the gateway): the
-- browser that comes back must be theirs. Empty: started by automation.
ALTER TABLE redirect_states ADD COLUMN owner TEXT NOT NULL DEFAULT '';
