CREATE TABLE shipments (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    shipment_id TEXT,
    tracking_id TEXT,
    carrier TEXT,
    reason TEXT,
    created_at BIGINT NOT NULL
);
