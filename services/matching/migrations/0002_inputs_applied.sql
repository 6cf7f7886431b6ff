-- Input events applied per (producer, region): placement, student and response events, counted in
-- the transaction that applies them. A round request states how many its producer had published
-- (MatchingRoundRequested.inputs_published); the round waits until as many are applied here.
CREATE TABLE inputs_applied (
    producer text NOT NULL,
    region   text NOT NULL,
    events   bigint NOT NULL,
    PRIMARY KEY (producer, region)
);
