-- Why the payment failed (a decline, or the provider unreachable until the
-- step's deadline): the cancellation reason depends on it.
ALTER TABLE orders ADD COLUMN payment_failure TEXT;

-- Idempotency keys expire after a day; this finds the expired ones.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
