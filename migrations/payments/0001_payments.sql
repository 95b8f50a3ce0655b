-- Payments service schema. Owned by the payments service only.

-- One account per user (the primary key is the rule: a second POST /accounts is a 409).
CREATE TABLE accounts (
    user_id       UUID PRIMARY KEY,
    -- Integer minor units. The CHECK is the last line of defence: no debit can overdraw.
    balance_minor BIGINT      NOT NULL CHECK (balance_minor >= 0 AND balance_minor <= 100000000000000),
    -- The balance the account was opened with; part of the money-conservation audit below.
    opening_minor BIGINT      NOT NULL CHECK (opening_minor >= 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per order ever processed, debited or not: the primary key on order_id is what makes
-- a debit happen at most once, even if the same request arrives under another message id.
CREATE TABLE transactions (
    order_id       UUID PRIMARY KEY,
    user_id        UUID        NOT NULL,
    amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0),
    outcome        TEXT        NOT NULL CHECK (outcome IN ('FINISHED', 'INSUFFICIENT_FUNDS', 'ACCOUNT_NOT_FOUND')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX transactions_by_user ON transactions (user_id, created_at);

-- Top-ups, so that money conservation can be audited:
-- sum(balances) = sum(opening balances) + sum(top-ups) - sum(FINISHED transactions).
CREATE TABLE topups (
    id           BIGSERIAL PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES accounts (user_id),
    amount_minor BIGINT      NOT NULL CHECK (amount_minor > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Transactional inbox (bus::inbox): the message id is inserted first in the handler's
-- transaction; a redelivered message hits the primary key and is skipped.
CREATE TABLE inbox (
    message_id  UUID PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Transactional outbox (bus::outbox): payment results, drained by the relay.
CREATE TABLE outbox (
    id           UUID PRIMARY KEY,
    seq          BIGSERIAL   NOT NULL,
    topic        TEXT        NOT NULL,
    message_key  TEXT        NOT NULL,
    message_type TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    attempts     INT         NOT NULL DEFAULT 0,
    last_error   TEXT
);

CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
