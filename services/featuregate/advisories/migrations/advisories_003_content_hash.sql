-- A digest of everything stored of an advisory (its packages too), so a
-- copy with the same updated_at and other content is told apart from a
-- replay: GitHub.com's updated_at has whole seconds, and an advisory may
-- change twice in one. Rows from before have '' and take the next copy.
ALTER TABLE advisories ADD COLUMN content_hash TEXT NOT NULL DEFAULT '';
