-- Retention (bus::retention) deletes inbox rows by age, oldest first: the index keeps that a
-- range scan instead of a full scan every round (received_at only grows, so inserts append).
CREATE INDEX inbox_by_age ON inbox (received_at);
