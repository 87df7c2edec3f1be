-- Issue 14 (second part): response plans, responder requests, roles, status updates, subscribers.

-- A named response: who is asked to join (users, schedules, policies; optionally with a role),
-- who is told (subscribers: users), the conference bridge and the chat channel.
CREATE TABLE response_plans (
    id                bigserial PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    conference_url    text NOT NULL DEFAULT '',
    conference_phone  text NOT NULL DEFAULT '',
    chat_channel      text NOT NULL DEFAULT '',
    message           text NOT NULL DEFAULT '',
    request_timeout_seconds integer NOT NULL DEFAULT 300 CHECK (request_timeout_seconds BETWEEN 5 AND 86400),
    created_at_ms     bigint NOT NULL
);
CREATE TABLE response_plan_responders (
    plan_id      bigint NOT NULL REFERENCES response_plans (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    user_id      bigint REFERENCES users (id),
    schedule_id  bigint REFERENCES schedules (id),
    policy_id    bigint REFERENCES escalation_policies (id),
    role         text CHECK (role IN ('commander', 'deputy', 'scribe', 'subject_matter_expert', 'customer_liaison', 'internal_liaison')),
    PRIMARY KEY (plan_id, position),
    CHECK ((user_id IS NOT NULL)::int + (schedule_id IS NOT NULL)::int + (policy_id IS NOT NULL)::int = 1)
);
CREATE TABLE response_plan_subscribers (
    plan_id   bigint NOT NULL REFERENCES response_plans (id) ON DELETE CASCADE,
    user_id   bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (plan_id, user_id)
);

-- What a major incident's response carries.
ALTER TABLE incidents
    ADD COLUMN response_plan_id bigint REFERENCES response_plans (id) ON DELETE SET NULL,
    ADD COLUMN conference_url text NOT NULL DEFAULT '',
    ADD COLUMN conference_phone text NOT NULL DEFAULT '',
    ADD COLUMN chat_channel text NOT NULL DEFAULT '';

-- The plan surge detection runs (none: it only opens the major incident).
ALTER TABLE surge ADD COLUMN response_plan_id bigint REFERENCES response_plans (id) ON DELETE SET NULL;

-- Responder requests: pending → joined | declined | no_answer (at timeout_at_ms).
CREATE TABLE responder_requests (
    id               bigserial PRIMARY KEY,
    incident_id      bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id),
    requested_by     text NOT NULL,
    message          text NOT NULL DEFAULT '',
    role             text,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'joined', 'declined', 'no_answer')),
    requested_at_ms  bigint NOT NULL,
    timeout_at_ms    bigint NOT NULL,
    answered_at_ms   bigint,
    UNIQUE (incident_id, user_id)
);
CREATE INDEX responder_requests_pending ON responder_requests (timeout_at_ms) WHERE state = 'pending';

-- Roles: several people may hold most roles; one commander at a time.
CREATE TABLE incident_roles (
    incident_id     bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('commander', 'deputy', 'scribe', 'subject_matter_expert', 'customer_liaison', 'internal_liaison')),
    user_id         bigint NOT NULL REFERENCES users (id),
    assigned_at_ms  bigint NOT NULL,
    assigned_by     text NOT NULL,
    PRIMARY KEY (incident_id, role, user_id)
);
CREATE UNIQUE INDEX incident_roles_one_commander ON incident_roles (incident_id) WHERE role = 'commander';

-- Status updates and who receives them.
CREATE TABLE status_updates (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    author       text NOT NULL,
    body         text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    at_ms        bigint NOT NULL
);
CREATE INDEX status_updates_incident ON status_updates (incident_id, id);
CREATE TABLE incident_subscribers (
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id),
    added_at_ms  bigint NOT NULL,
    PRIMARY KEY (incident_id, user_id)
);
