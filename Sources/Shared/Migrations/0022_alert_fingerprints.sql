-- Issue 27: Alertmanager's own webhook. An incident holds one alert per Alertmanager alert
-- fingerprint (its labels, annotations and instants in `event`), each firing or resolved on its
-- own; other monitors' alerts keep fingerprint NULL and status ''. Expand only.
ALTER TABLE alerts ADD COLUMN fingerprint text;
ALTER TABLE alerts ADD COLUMN status text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX alerts_fingerprint ON alerts (incident_id, fingerprint) WHERE fingerprint IS NOT NULL;
