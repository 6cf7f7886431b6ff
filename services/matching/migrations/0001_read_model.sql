-- The matching service's read model: what placements and students look like now, the matches it
-- proposed, the pairs that were declined, and the rounds it ran.

CREATE TABLE placements (
    placement_id text PRIMARY KEY,
    region       text NOT NULL,
    company_id   text NOT NULL,
    capacity     integer NOT NULL,
    offer        jsonb NOT NULL,             -- the PlacementOffer as published
    withdrawn    boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE students (
    student_id   text PRIMARY KEY,
    region       text NOT NULL,
    profile      jsonb,                       -- the StudentProfile; NULL when only withdrawn was seen
    withdrawn    boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX students_region ON students (region) WHERE NOT withdrawn;

-- status: proposed -> confirmed (both accepted) | cancelled | declined
CREATE TABLE matches (
    match_id          uuid PRIMARY KEY,
    region            text NOT NULL,          -- the region whose round proposed it
    round_id          uuid NOT NULL,
    student_id        text NOT NULL,
    placement_id      text NOT NULL,
    company_id        text NOT NULL,
    rank              integer,
    status            text NOT NULL CHECK (status IN ('proposed', 'confirmed', 'cancelled', 'declined')),
    student_accepted  boolean NOT NULL DEFAULT false,
    company_accepted  boolean NOT NULL DEFAULT false,
    cancel_reason     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    closed_at         timestamptz
);
-- A student has at most one standing match: nobody is ever proposed twice.
CREATE UNIQUE INDEX matches_one_standing_per_student
    ON matches (student_id) WHERE status IN ('proposed', 'confirmed');
CREATE INDEX matches_standing_region ON matches (region) WHERE status IN ('proposed', 'confirmed');
CREATE INDEX matches_standing_placement
    ON matches (placement_id) WHERE status IN ('proposed', 'confirmed');

CREATE TABLE exclusions (
    student_id   text NOT NULL,
    placement_id text NOT NULL,
    match_id     uuid,
    declined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, placement_id)
);

CREATE TABLE rounds (
    round_id      uuid PRIMARY KEY,
    region        text NOT NULL,
    policy        text NOT NULL,
    trigger       text NOT NULL,              -- requested | automatic
    figures       jsonb NOT NULL,
    unplaced      jsonb NOT NULL,
    proposed      integer NOT NULL,
    cancelled     integer NOT NULL,
    completed_at  timestamptz NOT NULL DEFAULT now()
);

-- Input versions per region, for automatic mode: a change bumps input_version; a round records
-- the version it saw. An automatic round runs only when input_version > round_version.
CREATE TABLE region_state (
    region         text PRIMARY KEY,
    input_version  bigint NOT NULL DEFAULT 0,
    round_version  bigint NOT NULL DEFAULT 0,
    changed_at     timestamptz NOT NULL DEFAULT now()
);

-- Which regions' students rank a placement (a placement change marks them changed).
CREATE INDEX students_preferences ON students USING gin ((profile -> 'preferences'));
