-- Issue 26: committed means paged, whoever is left. A relay's claim (a send in flight) is
-- leased_until_ms, apart from the retry backoff in next_attempt_at_ms: Assignment takes over
-- Ingest's rows that no live relay is sending once they are a few seconds old, whatever backoff a
-- stopped Ingest left on them. Older binaries ignore the column (expand only).
ALTER TABLE outbox ADD COLUMN leased_until_ms bigint NOT NULL DEFAULT 0;
CREATE INDEX outbox_age ON outbox (destination, created_at_ms);
