-- One row per (source, recipient): the notice's delivery log. Ids only, never names or addresses:
-- the supervisor's address and the student's contact are fetched from the placements service at
-- send time and never written here.
--   source_event_id: the match event; for a digest row, the round id.
--   recipient:       'placement:<id>' (that placement's supervisor).
--   status:          pending (due at next_attempt_at), grouped (waits in digest_id's digest),
--                    delivered, failed.
CREATE TABLE deliveries (
    notification_id  uuid PRIMARY KEY,
    source_event_id  uuid NOT NULL,
    recipient        text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('proposed', 'confirmed', 'cancelled', 'digest')),
    region           text NOT NULL,
    placement_id     text NOT NULL,
    match_id         uuid,
    student_id       text,
    round_id         uuid,
    detail           text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'grouped', 'delivered', 'failed')),
    digest_id        uuid REFERENCES deliveries (notification_id),
    channel          text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (source_event_id, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;
