-- Issue 22: the response wing's rules.

-- A pending responder request ends as `cancelled` when its major incident resolves.
ALTER TABLE responder_requests DROP CONSTRAINT responder_requests_state_check;
ALTER TABLE responder_requests ADD CONSTRAINT responder_requests_state_check
    CHECK (state IN ('pending', 'joined', 'declined', 'no_answer', 'cancelled'));

-- N (min_incidents) is the floor every surge needs: a rate-only surge let a quiet install
-- declare a P1 for 12 incidents. A floor of 0 becomes the default 50.
UPDATE surge SET min_incidents = 50 WHERE min_incidents < 1;
ALTER TABLE surge DROP CONSTRAINT surge_min_incidents_check;
ALTER TABLE surge ADD CONSTRAINT surge_min_incidents_check CHECK (min_incidents >= 1);
