-- A notification is recorded as PENDING before the channel is called and
-- SENT once it answered; only SENT ones are the customer's.
ALTER TABLE notifications ADD COLUMN status TEXT NOT NULL DEFAULT 'SENT';
