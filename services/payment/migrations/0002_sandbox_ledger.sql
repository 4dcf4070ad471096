-- The sandbox provider's ledger: what it charged and refunded, once per
-- idempotency key. It lives in the payment database so a payment process
-- killed between a charge and its record finds the charge here, as it would
-- at a real provider.
CREATE TABLE sandbox_charges (
    idempotency_key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- Set when charged; NULL with a decline reason when declined.
    payment_id TEXT,
    decline_reason TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sandbox_refunds (
    idempotency_key TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
