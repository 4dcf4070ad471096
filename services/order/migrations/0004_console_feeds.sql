-- The trace the order was placed in (the console links to it in Jaeger);
-- empty when the order service exported no traces.
ALTER TABLE orders ADD COLUMN trace_id TEXT;

-- The newest orders across customers (GET /v1/orders, the console's table).
CREATE INDEX orders_newest ON orders (placed_at);

-- Every status change as it was made: the feed behind GET /v1/orders/stream.
-- A change is written in the transaction that makes it; rows older than a
-- day are deleted (a stream resumes within a day, or starts afresh).
CREATE TABLE order_changes (
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, status)
);

CREATE INDEX order_changes_by_time ON order_changes (changed_at);
