-- Orders service schema. Owned by the orders service only; payments never reads it.

-- One row per order. Status moves NEW -> FINISHED | FAILED exactly once: the result consumer
-- updates with `WHERE status = 'NEW'`, so a replayed result changes nothing.
CREATE TABLE orders (
    order_id       UUID PRIMARY KEY,
    user_id        UUID        NOT NULL,
    -- Integer minor units (cents): exact, never floating point. Bounds mirror platform::Money.
    amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0 AND amount_minor <= 100000000000000),
    description    TEXT        NOT NULL CHECK (char_length(description) BETWEEN 1 AND 1000),
    status         TEXT        NOT NULL DEFAULT 'NEW' CHECK (status IN ('NEW', 'FINISHED', 'FAILED')),
    -- Set exactly when FAILED, so a reader never sees a failure without its reason.
    failure_reason TEXT        CHECK (failure_reason IN ('INSUFFICIENT_FUNDS', 'ACCOUNT_NOT_FOUND')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT failure_reason_iff_failed CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL))
);

-- GET /orders?user_id=... lists newest first; order_id breaks ties within one timestamp.
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, order_id DESC);

-- Transactional outbox (bus::outbox): written in the order's transaction, drained by the relay.
CREATE TABLE outbox (
    id           UUID PRIMARY KEY,          -- becomes the message-id header consumers dedupe on
    seq          BIGSERIAL   NOT NULL,      -- publish order (per-key order on the broker)
    topic        TEXT        NOT NULL,
    message_key  TEXT        NOT NULL,      -- user id: one user's events stay in order
    message_type TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,               -- set only after the broker acknowledged
    attempts     INT         NOT NULL DEFAULT 0,
    last_error   TEXT
);

-- The relay's claim query scans only pending rows, in publish order.
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

-- Wakes the relay at once; it also polls, so a lost notification only delays.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
