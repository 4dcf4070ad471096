-- A customer's orders are read from `orders` through this index: the copy
-- in `customer_orders` cost a statement per consumed event and held nothing
-- `orders` does not.
DROP TABLE customer_orders;
CREATE INDEX orders_by_customer ON orders (customer_id, placed_at, order_id);
