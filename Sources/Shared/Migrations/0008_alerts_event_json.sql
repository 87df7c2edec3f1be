-- An alert keeps the event as it arrived, for people (incident page, postmortems); nothing queries
-- its fields. json stores the validated text as sent, without building a jsonb value: one JSON
-- parse fewer per new incident on Ingest's hot path.
ALTER TABLE alerts ALTER COLUMN event DROP DEFAULT;
ALTER TABLE alerts ALTER COLUMN event TYPE json USING event::json;
ALTER TABLE alerts ALTER COLUMN event SET DEFAULT '{}';
