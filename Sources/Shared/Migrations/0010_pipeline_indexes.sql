-- Timers at scale (issue 11): one column holds an incident's earliest timer, with an index the
-- timer loop claims from in due order, so 100,000 pending timers cost an index range scan, not
-- a scan of every open incident.
ALTER TABLE incidents
    ADD COLUMN next_timer_at_ms bigint GENERATED ALWAYS AS (least(escalate_at_ms, ack_timeout_at_ms, auto_resolve_at_ms)) STORED;
CREATE INDEX incidents_next_timer ON incidents (next_timer_at_ms)
    WHERE status <> 'resolved' AND next_timer_at_ms IS NOT NULL;
CREATE INDEX incidents_work_retry ON incidents (work_retry_at_ms) WHERE work_retry_at_ms IS NOT NULL;
-- The notify intake looks up what still waits for (incident, user): an index, not a scan of
-- every notification ever sent.
CREATE INDEX notifications_pending_incident_user ON notifications (incident_id, user_id) WHERE status = 'pending';
-- Leased notifications (being sent now): few, found by index when the dispatcher asks when the
-- next lease ends.
CREATE INDEX notifications_leased ON notifications (lease_until_ms) WHERE status = 'pending' AND lease_until_ms > 0;
