-- Issue 25: SMS and calls handed to the provider, per contact method: the throttle counts them
-- (one a minute, 5 SMS / 3 calls per 15 minutes); rows older than the longest window are pruned.
CREATE TABLE contact_sends (
    contact_method_id  bigint NOT NULL REFERENCES contact_methods (id) ON DELETE CASCADE,
    at_ms              bigint NOT NULL,
    notification_id    uuid NOT NULL
);
CREATE INDEX contact_sends_method ON contact_sends (contact_method_id, at_ms);
