-- Issue 25: contact methods are verified before they are paged. SMS, phone and email methods
-- are verified by a 6-digit code sent to them (10-minute expiry, 5 tries); the others need none.
-- Methods that existed before this migration already paged people: they stay verified, with
-- verified_at_ms 0 ("before verification existed"; domain instants come from the services' clock).
ALTER TABLE contact_methods ADD COLUMN verified_at_ms bigint;
UPDATE contact_methods SET verified_at_ms = 0;

-- The code waiting for a method: only its hash is kept; wrong tries count down.
CREATE TABLE contact_verifications (
    contact_method_id  bigint PRIMARY KEY REFERENCES contact_methods (id) ON DELETE CASCADE,
    code_hash          bytea NOT NULL,
    sent_at_ms         bigint NOT NULL,
    expires_at_ms      bigint NOT NULL,
    tries_left         integer NOT NULL
);

-- Messages to a contact method that are not pages: a verification code, a test page. Written in
-- the transaction that asks for them, sent by Notifier (leased, like pages). A code's text is
-- blanked once the message is finished.
CREATE TABLE contact_notices (
    id                 uuid PRIMARY KEY,
    contact_method_id  bigint NOT NULL REFERENCES contact_methods (id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('verification', 'test')),
    batch              uuid NOT NULL,
    subject            text NOT NULL,
    body               text NOT NULL,
    spoken             text NOT NULL,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL,
    due_at_ms          bigint NOT NULL,
    lease_until_ms     bigint NOT NULL DEFAULT 0,
    last_error         text,
    created_at_ms      bigint NOT NULL,
    finished_at_ms     bigint
);
CREATE INDEX contact_notices_pending ON contact_notices (due_at_ms) WHERE status = 'pending';
CREATE INDEX contact_notices_batch ON contact_notices (batch);
CREATE INDEX contact_notices_method ON contact_notices (contact_method_id);

-- "A contact method that failed its last N pages is flagged": the latest finished pages per method.
CREATE INDEX notifications_method_finished ON notifications (contact_method_id, finished_at_ms DESC) WHERE finished_at_ms IS NOT NULL;
