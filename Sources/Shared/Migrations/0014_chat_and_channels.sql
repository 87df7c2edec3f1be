-- Issue 14 (third part): chat commands and channel subscribers.

-- The user's member id in the team chat (a Slack user id such as U0123ABC): chat commands are
-- done as the user whose chat_id (or else email) matches the caller.
ALTER TABLE users ADD COLUMN chat_id text;
CREATE UNIQUE INDEX users_chat_id ON users (chat_id) WHERE chat_id IS NOT NULL;

-- Slack-compatible incoming webhooks told of status updates: a plan's, and an incident's.
CREATE TABLE response_plan_channels (
    plan_id   bigint NOT NULL REFERENCES response_plans (id) ON DELETE CASCADE,
    url       text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    PRIMARY KEY (plan_id, url)
);
CREATE TABLE incident_channel_subscribers (
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    url          text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    added_at_ms  bigint NOT NULL,
    PRIMARY KEY (incident_id, url)
);

-- Notifier's posts to those channels: pending → sent | failed, retried with backoff like pages.
CREATE TABLE channel_posts (
    id                   uuid PRIMARY KEY,
    request_id           text NOT NULL UNIQUE,
    incident_id          bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    url                  text NOT NULL,
    reason               text NOT NULL,
    snapshot             bytea NOT NULL,
    requested_at_ms      bigint NOT NULL,
    due_at_ms            bigint NOT NULL,
    status               text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts             integer NOT NULL DEFAULT 0,
    first_attempt_at_ms  bigint,
    lease_until_ms       bigint NOT NULL DEFAULT 0,
    last_error           text,
    finished_at_ms       bigint
);
CREATE INDEX channel_posts_due ON channel_posts (due_at_ms) WHERE status = 'pending';
