-- Issue 25: SMS reply codes ("Reply 4a to ack"), per user and incident, reused once the
-- incident is resolved.
CREATE TABLE sms_reply_codes (
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    incident_id  bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    code         integer NOT NULL CHECK (code >= 1),
    PRIMARY KEY (user_id, incident_id),
    UNIQUE (user_id, code)
);
