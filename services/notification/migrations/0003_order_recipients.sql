-- Where each order's notifications go by email, learnt from its
-- OrderCreated: one row per order this service saw created, email NULL
-- when the order has no address.
CREATE TABLE order_recipients (
    order_id TEXT PRIMARY KEY,
    email TEXT
);
