-- Each customer's orders, newest first (GET /v1/customers/{id}/orders): a
-- projection the order service keeps from the events it consumes (and
-- rebuilds from the log with `orderflow rebuild order`).
CREATE TABLE customer_orders (
    customer_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    placed_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    total_minor BIGINT,
    currency TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, order_id)
);

CREATE INDEX customer_orders_newest ON customer_orders (customer_id, placed_at, order_id);
