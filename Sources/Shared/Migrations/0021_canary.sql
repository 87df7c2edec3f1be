-- Issue 26: the pager watches itself. Every Ingest sends a synthetic event through the whole
-- pipeline (Ingest → Assignment → Notifier → the `canary` contact method, which Notifier delivers
-- by writing here) and pings the outbound watchdog only when the round trip completes.
-- The canary's user, escalation policy and service are Klaxon's own (`system`): no list, export
-- or apply --prune shows or touches them. Its incidents are `canary`: no incident list, surge or
-- real incident's number counts them (their numbers come from a sequence of their own, far above
-- any real one). Expand only: older binaries ignore every column added here.
ALTER TABLE users ADD COLUMN system boolean NOT NULL DEFAULT false;
ALTER TABLE escalation_policies ADD COLUMN system boolean NOT NULL DEFAULT false;
ALTER TABLE services ADD COLUMN canary boolean NOT NULL DEFAULT false;
ALTER TABLE incidents ADD COLUMN canary boolean NOT NULL DEFAULT false;
CREATE INDEX incidents_canary_resolved ON incidents (resolved_at_ms) WHERE canary;
CREATE SEQUENCE canary_incident_numbers START WITH 1000000000000000001;

ALTER TABLE contact_methods DROP CONSTRAINT contact_methods_type_check;
ALTER TABLE contact_methods ADD CONSTRAINT contact_methods_type_check
    CHECK (type IN ('webhook', 'slack', 'email', 'sms', 'phone', 'push', 'canary'));

-- The one canary set-up the replicas share (made by the first Ingest that needs it).
CREATE TABLE canary (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    service_id   bigint NOT NULL,
    routing_key  text NOT NULL,
    created_at_ms bigint NOT NULL
);

-- One round trip: started by an Ingest (`instance`), delivered by a Notifier.
CREATE TABLE canary_rounds (
    dedup_key        text PRIMARY KEY,
    instance         text NOT NULL,
    started_at_ms    bigint NOT NULL,
    delivered_at_ms  bigint,
    delivered_by     text
);
CREATE INDEX canary_rounds_delivered ON canary_rounds (delivered_at_ms) WHERE delivered_at_ms IS NOT NULL;
CREATE INDEX canary_rounds_started ON canary_rounds (started_at_ms);
