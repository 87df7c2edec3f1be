-- An incident reassigned to another escalation policy follows that policy from then on
-- (NULL: the service's policy).
ALTER TABLE incidents ADD COLUMN escalation_policy_id bigint REFERENCES escalation_policies (id);
