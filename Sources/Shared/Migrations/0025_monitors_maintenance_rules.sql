-- Issue 27, points 3–5: heartbeat monitors, maintenance windows, event rules.

-- Heartbeat monitors: the id is the secret in the ping URL; the deadline is a timer like every
-- other (Assignment claims due ones with FOR UPDATE SKIP LOCKED).
CREATE TABLE heartbeats (
    id                     text PRIMARY KEY,
    name                   text NOT NULL UNIQUE,
    service_id             bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    period_seconds         integer NOT NULL DEFAULT 0,
    cron                   text NOT NULL DEFAULT '',
    time_zone              text NOT NULL DEFAULT 'UTC',
    grace_seconds          integer NOT NULL DEFAULT 0,
    start_timeout_seconds  integer NOT NULL DEFAULT 0,
    status                 text NOT NULL DEFAULT 'new',
    started_at_ms          bigint,
    last_ping_at_ms        bigint,
    last_ping_kind         text NOT NULL DEFAULT '',
    last_ping_body         text NOT NULL DEFAULT '',
    last_success_at_ms     bigint,
    deadline_at_ms         bigint,
    down_reason            text NOT NULL DEFAULT '',
    created_at_ms          bigint NOT NULL
);
CREATE INDEX heartbeats_deadline ON heartbeats (deadline_at_ms) WHERE deadline_at_ms IS NOT NULL;
CREATE INDEX heartbeats_service ON heartbeats (service_id);
-- When Assignment last looked at the deadlines: a gap longer than a minute is an outage of
-- Klaxon itself, and deadlines that fell in it move forward instead of all firing at once.
CREATE TABLE heartbeat_watch (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    checked_at_ms  bigint
);
INSERT INTO heartbeat_watch (singleton, checked_at_ms) VALUES (true, NULL);

-- Maintenance windows: one-off (starts/ends) or recurring (rrule, the first occurrence being
-- starts/ends, in time_zone); ended_at_ms cuts the occurrence around it short.
CREATE TABLE maintenance_windows (
    id             bigserial PRIMARY KEY,
    description    text NOT NULL DEFAULT '',
    starts_at_ms   bigint NOT NULL,
    ends_at_ms     bigint NOT NULL CHECK (ends_at_ms > starts_at_ms),
    rrule          text NOT NULL DEFAULT '',
    time_zone      text NOT NULL DEFAULT 'UTC',
    mode           text NOT NULL DEFAULT 'hold' CHECK (mode IN ('hold', 'drop')),
    matchers       jsonb NOT NULL DEFAULT '[]',
    ended_at_ms    bigint,
    cancelled      boolean NOT NULL DEFAULT false,
    created_at_ms  bigint NOT NULL,
    created_by     text NOT NULL DEFAULT ''
);
CREATE TABLE maintenance_window_services (
    window_id   bigint NOT NULL REFERENCES maintenance_windows (id) ON DELETE CASCADE,
    service_id  bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    PRIMARY KEY (window_id, service_id)
);
CREATE INDEX maintenance_window_services_service ON maintenance_window_services (service_id);

-- Event rules, per service, in order (the canonical JSON of KlaxonDomain.EventRules).
ALTER TABLE services ADD COLUMN event_rules jsonb NOT NULL DEFAULT '[]';

-- What a service's rules suppressed and its drop windows dropped: kept, never silently lost.
CREATE TABLE service_audit (
    id          bigserial PRIMARY KEY,
    service_id  bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    at_ms       bigint NOT NULL,
    kind        text NOT NULL,
    reason      text NOT NULL,
    event       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX service_audit_service ON service_audit (service_id, at_ms);

-- An incident held by a maintenance window: nobody paged until this instant (a timer).
ALTER TABLE incidents ADD COLUMN held_until_ms bigint;
DROP INDEX incidents_next_timer;
ALTER TABLE incidents DROP COLUMN next_timer_at_ms;
ALTER TABLE incidents
    ADD COLUMN next_timer_at_ms bigint GENERATED ALWAYS AS (least(escalate_at_ms, ack_timeout_at_ms, auto_resolve_at_ms, held_until_ms)) STORED;
CREATE INDEX incidents_next_timer ON incidents (next_timer_at_ms)
    WHERE status <> 'resolved' AND next_timer_at_ms IS NOT NULL;
