-- Klaxon's foundation schema. Landed migrations are never edited: add a new numbered file.
-- Instants are unix milliseconds (bigint) written by the services' clocks, never by now().

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    email       text NOT NULL,
    time_zone   text NOT NULL DEFAULT 'UTC',
    role        text NOT NULL DEFAULT 'responder' CHECK (role IN ('admin', 'responder', 'observer'))
);

CREATE TABLE contact_methods (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('webhook', 'slack', 'email', 'sms', 'phone', 'push')),
    address     text NOT NULL,
    label       text NOT NULL DEFAULT ''
);

CREATE TABLE notification_rules (
    id                   bigserial PRIMARY KEY,
    user_id              bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_method_id    bigint NOT NULL REFERENCES contact_methods (id),
    start_delay_seconds  integer NOT NULL CHECK (start_delay_seconds >= 0),
    urgency              text NOT NULL CHECK (urgency IN ('high', 'low'))
);
CREATE INDEX notification_rules_user ON notification_rules (user_id);

CREATE TABLE escalation_policies (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    num_loops  integer NOT NULL DEFAULT 0 CHECK (num_loops BETWEEN 0 AND 9)
);

CREATE TABLE escalation_levels (
    policy_id                 bigint NOT NULL REFERENCES escalation_policies (id) ON DELETE CASCADE,
    position                  integer NOT NULL CHECK (position BETWEEN 1 AND 20),
    escalation_delay_seconds  integer NOT NULL CHECK (escalation_delay_seconds >= 1),
    PRIMARY KEY (policy_id, position)
);

CREATE TABLE escalation_targets (
    policy_id       bigint NOT NULL,
    level_position  integer NOT NULL,
    position        integer NOT NULL CHECK (position BETWEEN 1 AND 10),
    user_id         bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (policy_id, level_position, position),
    FOREIGN KEY (policy_id, level_position) REFERENCES escalation_levels (policy_id, position) ON DELETE CASCADE
);

CREATE TABLE services (
    id                            bigserial PRIMARY KEY,
    name                          text NOT NULL,
    escalation_policy_id          bigint REFERENCES escalation_policies (id),
    ack_timeout_seconds           integer NOT NULL DEFAULT 1800 CHECK (ack_timeout_seconds >= 0),
    auto_resolve_timeout_seconds  integer NOT NULL DEFAULT 14400 CHECK (auto_resolve_timeout_seconds >= 0),
    urgency_rule                  text NOT NULL DEFAULT 'high' CHECK (urgency_rule IN ('high', 'low', 'severity'))
);

CREATE TABLE routing_keys (
    key         text PRIMARY KEY CHECK (length(key) = 32),
    service_id  bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE
);

CREATE SEQUENCE incident_numbers;

CREATE TABLE incidents (
    id              bigserial PRIMARY KEY,
    number          bigint NOT NULL UNIQUE DEFAULT nextval('incident_numbers'),
    service_id      bigint NOT NULL REFERENCES services (id),
    title           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    urgency         text NOT NULL CHECK (urgency IN ('high', 'low')),
    severity        text NOT NULL DEFAULT '',
    dedup_key       text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    current_level   integer NOT NULL DEFAULT 0,
    current_loop    integer NOT NULL DEFAULT 0,
    escalate_at_ms  bigint,
    created_at_ms   bigint NOT NULL,
    updated_at_ms   bigint NOT NULL,
    resolved_at_ms  bigint
);
-- At most one open incident per (service, dedup key): concurrent triggers on any number of
-- Ingest replicas make one incident; the others join it.
CREATE UNIQUE INDEX incidents_open_dedup ON incidents (service_id, dedup_key) WHERE status <> 'resolved';
CREATE INDEX incidents_escalate_at ON incidents (escalate_at_ms) WHERE escalate_at_ms IS NOT NULL;

CREATE TABLE alerts (
    id             bigserial PRIMARY KEY,
    incident_id    bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    summary        text NOT NULL,
    source         text NOT NULL,
    severity       text NOT NULL DEFAULT '',
    event          jsonb NOT NULL DEFAULT '{}',
    count          integer NOT NULL DEFAULT 1,
    first_at_ms    bigint NOT NULL,
    last_at_ms     bigint NOT NULL
);
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE incident_assignments (
    incident_id     bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id),
    assigned_at_ms  bigint NOT NULL,
    PRIMARY KEY (incident_id, user_id)
);

CREATE TABLE acknowledgements (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id       bigint REFERENCES users (id),
    actor         text NOT NULL,
    at_ms         bigint NOT NULL,
    closed_at_ms  bigint
);
CREATE INDEX acknowledgements_incident ON acknowledgements (incident_id);

CREATE TABLE timeline_entries (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at_ms        bigint NOT NULL,
    type         text NOT NULL,
    actor        text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_entries_incident ON timeline_entries (incident_id, id);

-- Transactional outbox: written with the change it announces, delivered over the binary
-- protocol, deleted on OK, retried with backoff otherwise.
CREATE TABLE outbox (
    id                  bigserial PRIMARY KEY,
    message_id          text NOT NULL UNIQUE,
    destination         text NOT NULL,
    method              text NOT NULL,
    body                bytea NOT NULL,
    created_at_ms       bigint NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at_ms  bigint NOT NULL,
    last_error          text
);
CREATE INDEX outbox_due ON outbox (destination, next_attempt_at_ms);

-- Receivers remember the messages they applied, in the same transaction as the effect.
CREATE TABLE inbox (
    consumer        text NOT NULL,
    message_id      text NOT NULL,
    received_at_ms  bigint NOT NULL,
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE notifications (
    id                  uuid PRIMARY KEY,
    request_id          text NOT NULL,
    rule_id             bigint NOT NULL REFERENCES notification_rules (id) ON DELETE CASCADE,
    incident_id         bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_method_id   bigint NOT NULL REFERENCES contact_methods (id),
    reason              text NOT NULL,
    minute_zero         boolean NOT NULL,
    snapshot            bytea NOT NULL,
    requested_at_ms     bigint NOT NULL,
    due_at_ms           bigint NOT NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    attempts            integer NOT NULL DEFAULT 0,
    lease_until_ms      bigint NOT NULL DEFAULT 0,
    last_error          text,
    finished_at_ms      bigint,
    UNIQUE (request_id, rule_id)
);
CREATE INDEX notifications_due ON notifications (due_at_ms) WHERE status = 'pending';
