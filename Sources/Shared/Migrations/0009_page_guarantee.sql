-- The page guarantee (issue 9).
-- trigger_applied: the trigger's level 1 was assigned and paged. Whatever reaches an incident
-- first (its IncidentTriggered message, an acknowledge, a resolve) applies the trigger first.
-- Rows written before this rule: those still waiting for their trigger are the triggered ones
-- nobody was assigned to; every other row was handled under the old rule.
ALTER TABLE incidents ADD COLUMN trigger_applied boolean NOT NULL DEFAULT false;
UPDATE incidents i SET trigger_applied = true
WHERE i.status <> 'triggered' OR i.current_level <> 0
   OR EXISTS (SELECT 1 FROM incident_assignments a WHERE a.incident_id = i.id);

-- One incident whose processing fails backs off on its own (the others keep flowing): the
-- timer loop skips it until work_retry_at_ms.
ALTER TABLE incidents
    ADD COLUMN work_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN work_retry_at_ms bigint,
    ADD COLUMN work_last_error text;

-- Notifications retry for a delivery window that starts at the first attempt.
ALTER TABLE notifications ADD COLUMN first_attempt_at_ms bigint;
