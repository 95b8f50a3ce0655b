-- A request payments cannot apply (undecodable amount, a permanent database error, retries
-- exhausted) is settled once as REJECTED, without a debit: a repeat of it — the orders sweeper,
-- a replay from the dead-letter topic — gets the same answer and can never debit afterwards.
-- Its amount may be what could not be read, hence nullable for REJECTED only.
ALTER TABLE transactions DROP CONSTRAINT transactions_outcome_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_outcome_check
    CHECK (outcome IN ('FINISHED', 'INSUFFICIENT_FUNDS', 'ACCOUNT_NOT_FOUND', 'REJECTED'));
ALTER TABLE transactions ALTER COLUMN amount_minor DROP NOT NULL;
ALTER TABLE transactions ADD CONSTRAINT transactions_amount_unless_rejected
    CHECK (outcome = 'REJECTED' OR amount_minor IS NOT NULL);
-- Why it was rejected (for operators; the order shows PAYMENT_REJECTED).
ALTER TABLE transactions ADD COLUMN detail TEXT;
