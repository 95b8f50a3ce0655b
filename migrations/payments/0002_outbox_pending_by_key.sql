-- The relay owns a message key (advisory lock) and then reads that key's pending rows in
-- publish order: this index serves `message_key = ANY(...) ORDER BY seq` on pending rows only.
CREATE INDEX outbox_pending_by_key ON outbox (message_key, seq) WHERE published_at IS NULL;
