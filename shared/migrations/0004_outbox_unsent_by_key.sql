-- The relay reads each key's (region's) unsent rows in id order, every key side by side, so one
-- region's backlog never holds back another's (shared/outbox.py). This index serves that read,
-- the skip scan over the keys with unsent rows, and the backlog count; it replaces the index on
-- (id) alone.
CREATE INDEX outbox_unsent_by_key ON outbox (key, id) WHERE sent_at IS NULL;
DROP INDEX outbox_unsent;
