-- Issue 28, point 5: outbound webhooks in PagerDuty's v3 shape, signed. A delivery row is
-- written in the transaction of the change it describes (an outbox), one per subscription.
CREATE TABLE webhook_subscriptions (
    id                 bigserial PRIMARY KEY,
    url                text NOT NULL,
    description        text NOT NULL DEFAULT '',
    event_types        text[] NOT NULL DEFAULT '{}',
    service_ids        bigint[] NOT NULL DEFAULT '{}',
    headers            jsonb NOT NULL DEFAULT '{}',
    secret             text NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    consecutive_drops  integer NOT NULL DEFAULT 0,
    disabled_reason    text NOT NULL DEFAULT '',
    created_at_ms      bigint NOT NULL
);
CREATE TABLE webhook_deliveries (
    id                  bigserial PRIMARY KEY,
    subscription_id     bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id            text NOT NULL,
    event_type          text NOT NULL,
    incident_id         bigint,
    body                text NOT NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dropped')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at_ms  bigint NOT NULL,
    lease_until_ms      bigint NOT NULL DEFAULT 0,
    last_status         integer NOT NULL DEFAULT 0,
    last_error          text NOT NULL DEFAULT '',
    created_at_ms       bigint NOT NULL,
    finished_at_ms      bigint
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (subscription_id, incident_id, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id);
