-- Issue 14 (first part): priorities, major incidents linking their children, surge detection.

-- P1–P5, optional. A major incident has its own response; its children keep their timelines.
ALTER TABLE incidents
    ADD COLUMN priority text CHECK (priority IN ('P1', 'P2', 'P3', 'P4', 'P5')),
    ADD COLUMN major boolean NOT NULL DEFAULT false,
    ADD COLUMN major_incident_id bigint REFERENCES incidents (id),
    ADD CHECK (NOT (major AND major_incident_id IS NOT NULL));
CREATE INDEX incidents_major_children ON incidents (major_incident_id) WHERE major_incident_id IS NOT NULL;
-- Surge detection counts new incidents by creation instant.
CREATE INDEX incidents_created ON incidents (created_at_ms);

-- Surge detection: its settings and its state, one row. Evaluated by one replica at a time
-- (the row is claimed FOR UPDATE SKIP LOCKED), from counts every replica agrees on.
CREATE TABLE surge (
    id                      boolean PRIMARY KEY DEFAULT true CHECK (id),
    enabled                 boolean NOT NULL DEFAULT true,
    window_seconds          integer NOT NULL DEFAULT 300 CHECK (window_seconds BETWEEN 10 AND 3600),
    min_incidents           integer NOT NULL DEFAULT 50 CHECK (min_incidents >= 0),
    rate_factor             double precision NOT NULL DEFAULT 10 CHECK (rate_factor >= 0),
    min_services            integer NOT NULL DEFAULT 3 CHECK (min_services >= 1),
    quiet_period_seconds    integer NOT NULL DEFAULT 600 CHECK (quiet_period_seconds >= 0),
    -- The surge going on, if any.
    since_ms                bigint,
    last_above_at_ms        bigint,
    major_incident_id       bigint REFERENCES incidents (id),
    -- Children are linked up to this instant (later incidents of the surge join on the next step).
    linked_until_ms         bigint
);
INSERT INTO surge DEFAULT VALUES;

-- Klaxon's own services (the one surge major incidents belong to): not listed, exported or pruned.
ALTER TABLE services ADD COLUMN system boolean NOT NULL DEFAULT false;
