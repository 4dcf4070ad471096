-- At most one notification per order and kind: the customer never hears the same news twice.
CREATE TABLE notifications (
    notification_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    UNIQUE (order_id, kind)
);

CREATE INDEX notifications_by_customer ON notifications (customer_id, sent_at);
