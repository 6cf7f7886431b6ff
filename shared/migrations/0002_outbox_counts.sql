-- Events published per (topic, key), maintained by enqueue in the writing transaction. Outbox rows
-- may be purged or erased; these counts stay, so a producer can state how many events of a region
-- it had published before a given moment (see MatchingRoundRequested.inputs_published).
CREATE TABLE outbox_counts (
    topic  text NOT NULL,
    key    text NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (topic, key)
);
INSERT INTO outbox_counts (topic, key, events)
SELECT topic, key, count(*) FROM outbox GROUP BY topic, key;
