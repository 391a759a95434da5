-- The service that forwarded the actor's call (the gateway, for a person
-- signed in to the admin page); empty for direct callers and for events
-- written before it was kept. The event's JSON carries it too.
ALTER TABLE connection_events ADD COLUMN via TEXT NOT NULL DEFAULT '';
