-- Portable between SQLite and PostgreSQL: TEXT, BIGINT, no serial types.
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    items TEXT NOT NULL,
    total_minor BIGINT,
    currency TEXT,
    tracking_id TEXT,
    placed_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    terminal_at BIGINT
);

CREATE INDEX orders_by_status ON orders (status);

-- Every saga event seen for an order: its audit trail, and what its status is derived from.
CREATE TABLE order_history (
    order_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (order_id, event_id)
);

CREATE TABLE idempotency_keys (
    idempotency_key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    order_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
