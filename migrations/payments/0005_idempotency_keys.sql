-- Idempotency-Key of the POSTs (platform::idempotency): one row per user and key, written in
-- the transaction of the request's effect, so the key and the effect exist together or not at
-- all. Only successful answers are stored; rows older than the service's TTL are taken over by
-- the next request with the key and deleted by the purge task.
CREATE TABLE idempotency_keys (
    user_id    UUID        NOT NULL,
    key        TEXT        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    -- "POST /orders" and the like: a key cannot replay another operation's answer.
    operation  TEXT        NOT NULL,
    -- The parsed request in canonical JSON text; a reuse with anything else is a 409.
    request    TEXT        NOT NULL,
    -- The answer's data; NULL only inside the transaction that is still doing the work.
    response   JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- The purge task deletes the oldest first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
