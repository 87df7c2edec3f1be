-- Issue 27: PagerDuty change events (deploys, config changes) per service, shown beside the
-- incidents that follow them. `at_ms` is the change's own timestamp (else when it arrived).
CREATE TABLE change_events (
    id              bigserial PRIMARY KEY,
    service_id      bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    summary         text NOT NULL,
    source          text NOT NULL DEFAULT '',
    at_ms           bigint NOT NULL,
    received_at_ms  bigint NOT NULL,
    custom_details  jsonb NOT NULL DEFAULT '{}',
    links           jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX change_events_service ON change_events (service_id, at_ms);
