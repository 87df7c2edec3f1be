-- Issue 28, point 6: shadow mode. A service in shadow mode does everything but deliver: each
-- page that would have gone out is recorded here instead (by the Notifier that claimed it, in
-- the transaction that finishes the notification), and `klaxon shadow report` compares them
-- with what the old pager sent. Going live is one field.
ALTER TABLE services ADD COLUMN mode text NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'shadow'));
CREATE TABLE shadow_pages (
    notification_id  uuid PRIMARY KEY,
    service_id       bigint NOT NULL,
    incident_id      bigint NOT NULL,
    user_id          bigint NOT NULL,
    channel          text NOT NULL,
    reason           text NOT NULL,
    minute_zero      boolean NOT NULL,
    due_at_ms        bigint NOT NULL,
    at_ms            bigint NOT NULL
);
CREATE INDEX shadow_pages_service_at ON shadow_pages (service_id, at_ms);

-- Outbound webhooks' maintenance_window.started|ended: the occurrence last announced, so each
-- start and end is told once (by whichever Assignment replica looks first).
ALTER TABLE maintenance_windows ADD COLUMN announced_start_ms bigint, ADD COLUMN announced_end_ms bigint;

-- A webhook subscription's owner is told (a notice on their contact methods) when it is disabled.
ALTER TABLE webhook_subscriptions ADD COLUMN owner_user_id bigint REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE contact_notices DROP CONSTRAINT contact_notices_kind_check,
    ADD CONSTRAINT contact_notices_kind_check CHECK (kind IN ('verification', 'test', 'notice'));
