-- Issue 29: a page's lease is written twice per page (claim, then put back or finished). With
-- lease_until_ms in no index, the claim's UPDATE is a HOT update (no new index entries: the
-- notification's five indexes are left alone), when the page has room: fillfactor 80 keeps some
-- free for it. When the next lease ends is then found through notifications_due (pending rows
-- only: those leased now, and the backlog).
DROP INDEX IF EXISTS notifications_leased;
ALTER TABLE notifications SET (fillfactor = 80);
