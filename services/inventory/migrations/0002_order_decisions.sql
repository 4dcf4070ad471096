-- What inventory decided for each order it was asked to reserve for: RESERVED
-- or UNAVAILABLE. An OrderCreated that comes again after the inbox forgot it
-- (a replay older than the inbox's retention, a group whose offsets expired)
-- finds its order here and reserves nothing. Orders reserved before this
-- table existed are found by their reservations.
CREATE TABLE order_decisions (
    order_id TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    decided_at BIGINT NOT NULL
);
