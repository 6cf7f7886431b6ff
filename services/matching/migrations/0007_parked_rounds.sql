-- Round requests whose inputs were not all applied when they arrived: parked here, so the
-- consumer commits their offset and reads on, and run (in `seq` order per region) once the
-- inputs they count are applied or dead-lettered, or ended as not run after the input deadline.
-- A region's later request parks behind an earlier parked one, so its rounds never reorder.
-- `payload` is the request as it was consumed (its JSON); `traceparent`/`tracestate` the trace
-- of its handling, which the round continues.
CREATE TABLE parked_rounds (
    seq         bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    region      text NOT NULL,
    producer    text NOT NULL,
    payload     bytea NOT NULL,
    traceparent text,
    tracestate  text,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_rounds_region ON parked_rounds (region, seq);
