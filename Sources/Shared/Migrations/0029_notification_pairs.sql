-- Issue 29: the notify intake looks up what still waits for each (incident, user) of a batch.
-- Through notifications_pending_incident_user (partial: status = 'pending') the planner had a
-- choice, and it chose wrong: an ANALYZE taken while nothing is pending (most of the time)
-- records both pending indexes as empty, and the smaller one, notifications_due, wins; the
-- lookup then reads every pending notification, for every batch. When a backlog built (up to
-- 18,000 pages waiting at 1,000 triggers/s), each intake read all of it, took 0.4-2.3 s, and the
-- backlog grew: pages arrived up to 17 s late (p50 of the worst run). This index holds every
-- notification, so its statistics are those of the table, whatever is pending at ANALYZE time,
-- and the intake reaches it with the status tested outside a fence (NotifyIntake.waitingSQL),
-- so no pending index can stand in for it. It also serves the cascade when an incident is deleted.
CREATE INDEX notifications_incident_user ON notifications (incident_id, user_id);
DROP INDEX IF EXISTS notifications_pending_incident_user;
