-- The order stream (GET /orders/stream, orders::feed): every status change is announced on
-- channel `order_changes` by the transaction that makes it, and a client that reconnects asks
-- for the changes it may have missed by cursor.
--
-- The cursor is a transaction-id watermark, not a sequence: sequence values are taken in one
-- order and committed in another, so "everything after N" would skip a late commit below N.
-- `changed_xid` is the id of the transaction that last changed the row; a cursor W promises
-- "every change by a transaction with an id below W was already sent", which is what
-- pg_snapshot_xmin() of a snapshot guarantees (all transactions below it had finished).
ALTER TABLE orders ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX orders_changes ON orders (user_id, changed_xid, order_id);

-- The notification carries the whole row, so a live stream never queries the table; its cursor
-- is the watermark of the changing statement: every transaction with a lower id had finished
-- before it, and notifications arrive in commit order, so all of their changes came earlier.
-- A payload stays far below the 8000-byte limit (a description is at most 1000 characters).
CREATE FUNCTION order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_changes', json_build_object(
        'cursor', pg_snapshot_xmin(pg_current_snapshot())::text,
        'order_id', NEW.order_id,
        'user_id', NEW.user_id,
        'amount_minor', NEW.amount_minor,
        'description', NEW.description,
        'status', NEW.status,
        'failure_reason', NEW.failure_reason,
        'created_at', NEW.created_at,
        'updated_at', NEW.updated_at)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_changed AFTER INSERT OR UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION order_changed();
