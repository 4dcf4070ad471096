-- When the order's shipment was created: a charge whose goods left is never
-- refunded, whatever a later ShipmentFailed says.
ALTER TABLE payments ADD COLUMN shipped_at BIGINT;
