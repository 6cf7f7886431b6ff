-- Used link ids are kept only while their links could still be valid (adapters/audit.py drops
-- the older ones): an index to find them.
CREATE INDEX action_links_used_at ON action_links_used (used_at);
