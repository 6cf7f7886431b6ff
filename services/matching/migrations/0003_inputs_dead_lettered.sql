-- Input events dead-lettered because their handler kept failing. They count towards a round
-- request's inputs_published like applied ones, so the round goes on without them instead of
-- waiting for an event that will never be applied. An event replayed from the .dlt and applied
-- later is counted in inputs_applied instead, and its row here is deleted.
CREATE TABLE inputs_dead_lettered (
    event_id         uuid PRIMARY KEY,
    producer         text NOT NULL,
    region           text NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inputs_dead_lettered_producer_region ON inputs_dead_lettered (producer, region);
