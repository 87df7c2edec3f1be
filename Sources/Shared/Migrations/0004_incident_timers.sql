-- The rest of an incident's assignment state: ack timeout (or snooze end), auto-resolve,
-- and whether the escalation path is exhausted. Due timers are found through partial indexes.
ALTER TABLE incidents
    ADD COLUMN ack_timeout_at_ms bigint,
    ADD COLUMN snoozed_until_ms bigint,
    ADD COLUMN auto_resolve_at_ms bigint,
    ADD COLUMN exhausted boolean NOT NULL DEFAULT false;
CREATE INDEX incidents_ack_timeout_at ON incidents (ack_timeout_at_ms) WHERE ack_timeout_at_ms IS NOT NULL;
CREATE INDEX incidents_auto_resolve_at ON incidents (auto_resolve_at_ms) WHERE auto_resolve_at_ms IS NOT NULL;
