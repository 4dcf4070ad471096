CREATE TABLE stock (
    sku TEXT PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0),
    reserved BIGINT NOT NULL CHECK (reserved >= 0),
    unit_price_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per order line held for an order: RESERVED, then SHIPPED or RELEASED.
CREATE TABLE reservations (
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    status TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
