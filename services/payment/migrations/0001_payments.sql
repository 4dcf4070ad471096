-- One payment per order: CHARGED, DECLINED, or REFUNDED after a charge.
CREATE TABLE payments (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payment_id TEXT,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
