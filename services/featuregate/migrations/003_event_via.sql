-- The service that forwarded the actor's call (the gateway, for a person
-- signed in to the admin page); empty for direct callers, the gate's own
-- events and events written before it was kept.
ALTER TABLE gate_events ADD COLUMN via TEXT NOT NULL DEFAULT '';
