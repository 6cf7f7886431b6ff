-- The placements service's own tables (the outbox and inbox come from shared/migrations).

-- A company's default notification channel; a placement's own setting wins over it.
CREATE TABLE companies (
    company_id   text PRIMARY KEY,
    channel      text NOT NULL CHECK (channel IN ('email', 'webhook')),
    webhook_url  text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Placement offers: `offer` holds the PlacementOffer exactly as published.
CREATE TABLE placements (
    placement_id     text PRIMARY KEY,
    company_id       text NOT NULL,
    region           text NOT NULL,
    offer            jsonb NOT NULL,
    channel          text CHECK (channel IN ('email', 'webhook')),
    webhook_url      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz,
    withdraw_reason  text
);
CREATE INDEX placements_region ON placements (region, placement_id);
CREATE INDEX placements_company ON placements (company_id, placement_id);

-- Students: the pseudonymous profile (as published) plus the personal details that only this
-- table holds. Withdrawal erases them and leaves a tombstone: student_id, region, programme and
-- the withdrawal time.
CREATE TABLE students (
    student_id     text PRIMARY KEY,
    region         text NOT NULL,
    programme      text,
    profile        jsonb,
    name           text,
    email          text,
    phone          text,
    registered_at  timestamptz,
    updated_at     timestamptz,
    withdrawn_at   timestamptz
);

-- Match states, kept current from apl.matches.v1 and from this service's own accepts/declines.
CREATE TABLE matches (
    match_id             uuid PRIMARY KEY,
    round_id             uuid,
    region               text NOT NULL,
    student_id           text NOT NULL,
    placement_id         text NOT NULL,
    company_id           text,
    rank                 integer,
    state                text NOT NULL
        CHECK (state IN ('proposed', 'accepted', 'confirmed', 'declined', 'cancelled')),
    accepted_by_student  boolean NOT NULL DEFAULT false,
    accepted_by_company  boolean NOT NULL DEFAULT false,
    declined_by          text,
    reason               text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX matches_placement ON matches (placement_id, created_at);
CREATE INDEX matches_student ON matches (student_id, created_at);

-- Matching rounds asked for here (or reported by the matching service), with their figures.
CREATE TABLE rounds (
    round_id            uuid PRIMARY KEY,
    region              text NOT NULL,
    policy              text NOT NULL,
    requested_by        text,
    status              text NOT NULL CHECK (status IN ('requested', 'completed')),
    figures             jsonb,
    unplaced_by_reason  jsonb,
    proposed            integer,
    cancelled           integer,
    requested_at        timestamptz,
    completed_at        timestamptz
);

-- Idempotency-Key of POST requests: the first response is replayed for a repeat. Request
-- bodies are never stored, only a hash; `student_id` lets erasure scrub a stored response.
CREATE TABLE idempotency_keys (
    key           text NOT NULL,
    method        text NOT NULL,
    path          text NOT NULL,
    request_hash  text,
    status        integer,
    response      jsonb,
    student_id    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, method, path)
);
CREATE INDEX idempotency_student ON idempotency_keys (student_id) WHERE student_id IS NOT NULL;
