-- What was put into stock, so that stock can be audited per SKU:
-- initial + restocked = available + reserved + shipped (shipped: the SKU's
-- SHIPPED reservations). `initial_units` is the level a SKU was first set
-- to; `restocked_units` adds up every later change an operator made (a
-- lowered level counts negative). SKUs that exist already start from a
-- stock-take: what they hold now plus what their reservations shipped.
ALTER TABLE stock ADD COLUMN initial_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stock ADD COLUMN restocked_units BIGINT NOT NULL DEFAULT 0;
UPDATE stock SET initial_units = available + reserved + COALESCE(
    (SELECT SUM(r.quantity) FROM reservations r WHERE r.sku = stock.sku AND r.status = 'SHIPPED'), 0);
