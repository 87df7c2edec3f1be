-- Issue 27: the Opsgenie Alert API. Opsgenie answers every call 202 with a request id and
-- processes it later; clients (Zabbix's stock media type, the SDKs) then read the outcome at
-- GET /v2/alerts/requests/{id}. Klaxon processes the call before answering and keeps its outcome
-- here, per service (the API key is a routing key), for three days.
CREATE TABLE opsgenie_requests (
    id               uuid PRIMARY KEY,
    service_id       bigint NOT NULL,
    action           text NOT NULL,
    success          boolean NOT NULL,
    status           text NOT NULL,
    alert_id         text NOT NULL DEFAULT '',
    alias            text NOT NULL DEFAULT '',
    processed_at_ms  bigint NOT NULL
);
CREATE INDEX opsgenie_requests_processed ON opsgenie_requests (processed_at_ms);
