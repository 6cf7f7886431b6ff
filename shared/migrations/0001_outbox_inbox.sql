-- Transactional outbox: rows written in the same transaction as the change they announce.
-- A relay publishes unsent rows in id order and marks them sent after the broker acknowledged.
-- Writers take a per-region transaction lock before inserting (see shared/outbox.py), so within a
-- region id order is commit order and no row can become visible behind one already published.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    topic       text NOT NULL,
    key         text NOT NULL,
    event_type  text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Inbox: one row per consumed event, inserted in the transaction that applies its effect.
CREATE TABLE inbox (
    event_id     uuid PRIMARY KEY,
    topic        text NOT NULL,
    event_type   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
