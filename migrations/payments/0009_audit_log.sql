-- Who added money or opened an account, written in the same transaction as the effect, so a
-- top-up without its audit row (or the other way round) cannot exist. Rows are never updated or
-- deleted by the service (no retention: an audit trail outlives the data it explains).
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- What happened: the two operations that create money in an account.
    action      TEXT        NOT NULL CHECK (action IN ('account_opened', 'top_up')),
    -- The account it happened to.
    user_id     UUID        NOT NULL,
    -- The verified token subject that asked (a user's UUID or an operator's name); NULL only
    -- when the system runs with AUTH=off, where nobody is authenticated.
    subject     TEXT,
    -- The token's scopes at the time (space-separated), e.g. payments:topup.
    scopes      TEXT        NOT NULL DEFAULT '',
    -- Money moved: the opening balance or the top-up's amount, and the balance it left.
    amount_minor        BIGINT NOT NULL CHECK (amount_minor >= 0),
    balance_after_minor BIGINT NOT NULL CHECK (balance_after_minor >= 0),
    -- The gateway's x-request-id and the W3C trace id: to find the request's log lines.
    request_id  TEXT,
    trace_id    TEXT
);

-- An account's audit trail, newest first.
CREATE INDEX audit_log_by_user ON audit_log (user_id, at DESC);
