-- Issue 25: a page sent inside another page's message (a throttled phone's bundle) names that
-- message's notification, so a bundle the provider reports undelivered sends its riders again too.
ALTER TABLE notifications ADD COLUMN bundled_in uuid;
CREATE INDEX notifications_bundled_in ON notifications (bundled_in) WHERE bundled_in IS NOT NULL;
