-- The audit trail and the supervisors' used action links.

-- One row per event this service published, in the transaction that published it: who caused it
-- (the token's pseudonymous subject, the role, the OAuth client; never a name). A NULL actor
-- means the change was made without one (a script or test without a token).
CREATE TABLE audit (
    event_id    uuid PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,  -- the order within one transaction
    event_type  text NOT NULL,
    region      text NOT NULL,
    subject     text,
    role        text,
    client      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_region ON audit (region, at DESC, seq DESC);

-- The signed confirm/decline links of supervisor notices are single-use: a link's id is
-- recorded here in the transaction that acts on it.
CREATE TABLE action_links_used (
    link_id   uuid PRIMARY KEY,
    match_id  uuid NOT NULL,
    action    text NOT NULL CHECK (action IN ('confirm', 'decline')),
    used_at   timestamptz NOT NULL DEFAULT now()
);
