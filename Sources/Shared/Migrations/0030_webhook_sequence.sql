-- Issue 29: outbound webhooks go in order per (subscription, incident): a delivery is claimable
-- only when no earlier one of its sequence is pending. That test went through
-- webhook_deliveries_order (partial: status = 'pending') with IS NOT DISTINCT FROM, which no
-- index can serve, and after an ANALYZE made while nothing was pending the planner read every
-- pending delivery for each candidate: a receiver that is down with 5,000 deliveries waiting
-- made each claim take 3.6 s. This index covers every delivery, keyed by the sequence (no
-- incident: 0), so the test is a probe whatever is pending (WebhookSender.claimSQL,
-- WebhookPlanTests): 12 ms for the same claim.
CREATE INDEX webhook_deliveries_sequence ON webhook_deliveries (subscription_id, (coalesce(incident_id, 0)), id);
DROP INDEX IF EXISTS webhook_deliveries_order;
