-- Account history (GET /accounts/{user_id}/transactions). Every money movement of an account —
-- a top-up, a FINISHED debit — takes the next number of that account's `movements` counter and
-- records the balance it left, in the transaction that moved the money, under the account's row
-- lock: the history is ordered exactly and each entry's balance is one that really existed.
ALTER TABLE accounts ADD COLUMN movements BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topups ADD COLUMN movement BIGINT, ADD COLUMN balance_after_minor BIGINT;
ALTER TABLE transactions ADD COLUMN movement BIGINT, ADD COLUMN balance_after_minor BIGINT;

-- Rows written before this migration: numbered in time order, balances replayed from the opening.
CREATE TEMP TABLE history_backfill ON COMMIT DROP AS
SELECT m.src, m.id, m.user_id,
       row_number() OVER w AS movement,
       a.opening_minor + sum(delta) OVER w AS balance_after
FROM (
    SELECT 'T' AS src, t.id::text AS id, t.user_id, t.amount_minor AS delta, t.created_at FROM topups t
    UNION ALL
    SELECT 'D', x.order_id::text, x.user_id, -x.amount_minor, x.created_at
    FROM transactions x WHERE x.outcome = 'FINISHED'
) m JOIN accounts a USING (user_id)
WINDOW w AS (PARTITION BY m.user_id ORDER BY m.created_at, m.src, m.id ROWS UNBOUNDED PRECEDING);
UPDATE topups t SET movement = b.movement, balance_after_minor = b.balance_after
FROM history_backfill b WHERE b.src = 'T' AND b.id = t.id::text;
UPDATE transactions x SET movement = b.movement, balance_after_minor = b.balance_after
FROM history_backfill b WHERE b.src = 'D' AND b.id = x.order_id::text;
UPDATE accounts a SET movements = b.n
FROM (SELECT user_id, max(movement) AS n FROM history_backfill GROUP BY user_id) b
WHERE b.user_id = a.user_id;

ALTER TABLE topups ALTER COLUMN movement SET NOT NULL, ALTER COLUMN balance_after_minor SET NOT NULL;
ALTER TABLE transactions ADD CONSTRAINT transactions_movement_iff_finished
    CHECK ((outcome = 'FINISHED') = (movement IS NOT NULL AND balance_after_minor IS NOT NULL));
CREATE UNIQUE INDEX topups_by_movement ON topups (user_id, movement);
CREATE UNIQUE INDEX transactions_by_movement ON transactions (user_id, movement)
    WHERE movement IS NOT NULL;
