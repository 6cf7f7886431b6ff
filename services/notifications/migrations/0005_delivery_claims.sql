-- Delivery without a transaction held open across the sends (docs/notifications.md "Exactly one
-- notice per (event, recipient)"): a worker claims a batch of due rows in one short transaction,
-- writing its claim's id and moving `next_attempt_at` to the end of the claim's lease (no other
-- worker picks them meanwhile), sends, and records the outcomes in a second transaction, only on
-- rows still under its claim. A row whose worker died is due again when the lease ends.
ALTER TABLE deliveries ADD COLUMN claimed_by uuid;
