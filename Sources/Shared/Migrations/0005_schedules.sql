-- On-call schedules (layers and overrides kept as one JSON document: the schedule is always
-- evaluated whole) and schedules as escalation targets.
CREATE TABLE schedules (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    time_zone   text NOT NULL,
    definition  jsonb NOT NULL
);

ALTER TABLE escalation_targets
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN schedule_id bigint REFERENCES schedules (id),
    ADD CONSTRAINT escalation_targets_one_target CHECK ((user_id IS NULL) <> (schedule_id IS NULL));
