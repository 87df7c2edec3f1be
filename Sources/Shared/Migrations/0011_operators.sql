-- Issue 12: operators configure Klaxon through the API, and every call carries a token.

-- Bearer tokens: only a SHA-256 hash is stored; the token is shown once.
CREATE TABLE api_tokens (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    role            text NOT NULL CHECK (role IN ('admin', 'responder', 'observer', 'service')),
    user_id         bigint REFERENCES users (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL UNIQUE,
    prefix          text NOT NULL,
    created_at_ms   bigint NOT NULL,
    revoked_at_ms   bigint,
    CHECK (role <> 'responder' OR user_id IS NOT NULL)
);

-- Routing keys have a name within their service (rotation: a second key beside the first).
ALTER TABLE routing_keys
    ADD COLUMN name text NOT NULL DEFAULT 'default',
    ADD COLUMN created_at_ms bigint NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX routing_keys_service_name ON routing_keys (service_id, name);

-- A deleted service keeps its incidents' history; its routing keys are gone.
ALTER TABLE services ADD COLUMN deleted_at_ms bigint;

-- A schedule's iCal feed token (hash); NULL: no feed yet.
ALTER TABLE schedules ADD COLUMN feed_token_hash bytea;
