-- Per-service event rate limit (token bucket per routing key): events per minute (0 = off) and burst.
ALTER TABLE services
    ADD COLUMN events_per_minute integer NOT NULL DEFAULT 120 CHECK (events_per_minute >= 0),
    ADD COLUMN events_burst integer NOT NULL DEFAULT 60 CHECK (events_burst >= 1);
