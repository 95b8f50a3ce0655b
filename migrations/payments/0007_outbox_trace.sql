-- The W3C trace context of the work that wrote the row (`traceparent`), sent with the message as
-- a header so the consumer continues the same trace. NULL for rows written outside any traced
-- work (the NEW-order sweeper, rows from before this migration): the consumer starts a new trace.
-- Nullable with no default, so adding it rewrites nothing.
ALTER TABLE outbox ADD COLUMN traceparent text;
