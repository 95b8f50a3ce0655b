-- A payment request payments could not apply at all settles its order FAILED / PAYMENT_REJECTED
-- (SPEC §3.6), so every order leaves NEW even when its message was dead-lettered.
ALTER TABLE orders DROP CONSTRAINT orders_failure_reason_check;
ALTER TABLE orders ADD CONSTRAINT orders_failure_reason_check
    CHECK (failure_reason IN ('INSUFFICIENT_FUNDS', 'ACCOUNT_NOT_FOUND', 'PAYMENT_REJECTED'));

-- When payment was last requested for the order: the sweeper re-requests payment for orders
-- still NEW long after it (a request or result lost to an operator's purge, a dead letter),
-- safe because payments settles each order once and answers a repeat with its recorded outcome.
ALTER TABLE orders ADD COLUMN payment_requested_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX orders_new_by_request ON orders (payment_requested_at) WHERE status = 'NEW';
