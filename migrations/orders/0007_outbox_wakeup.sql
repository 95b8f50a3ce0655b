-- The relay is woken in-process by whatever wrote outbox rows, after its commit, and polls every
-- second for the rest (bus::outbox). A NOTIFY per insert took PostgreSQL's notify-queue lock in
-- every writing commit: 13-17 % of the order-accept throughput (docs/PERFORMANCE.md).
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
