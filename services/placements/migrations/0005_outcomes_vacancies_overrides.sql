-- Every student's outcome of a round, rounds of every kind, coordinators' overrides, students'
-- languages (docs/placements.md "Outcomes, vacancies, overrides, reports").

-- A round's kind and options, and how many outcome parts arrived before it completed.
ALTER TABLE rounds
    ADD COLUMN kind            text NOT NULL DEFAULT 'ordinary'
        CHECK (kind IN ('ordinary', 'supplementary')),
    ADD COLUMN fill            boolean NOT NULL DEFAULT false,
    ADD COLUMN dry_run         boolean NOT NULL DEFAULT false,
    ADD COLUMN outcome_parts   integer NOT NULL DEFAULT 0,
    ADD COLUMN parts_received  integer NOT NULL DEFAULT 0;
CREATE INDEX rounds_region ON rounds (region, coalesce(requested_at, completed_at) DESC, round_id);

-- One row per student and round (MatchingRoundOutcomes): codes and figures, no words, no names.
-- `seq` orders the rows as they arrived: a student's latest outcome is the highest.
CREATE TABLE outcomes (
    round_id               uuid NOT NULL,
    student_id             text NOT NULL,
    seq                    bigint GENERATED ALWAYS AS IDENTITY,
    region                 text NOT NULL,
    dry_run                boolean NOT NULL,
    placement_id           text,
    rank                   integer,
    filled                 boolean NOT NULL DEFAULT false,
    pinned                 boolean NOT NULL DEFAULT false,
    reason                 text,
    previous_placement_id  text,
    explanation            jsonb NOT NULL,
    PRIMARY KEY (round_id, student_id)
);
CREATE INDEX outcomes_student ON outcomes (student_id, seq DESC) WHERE NOT dry_run;
CREATE INDEX outcomes_round ON outcomes (round_id, seq);

-- What matching proposed: by fill (rank null), or a coordinator's override.
ALTER TABLE matches
    ADD COLUMN filled    boolean NOT NULL DEFAULT false,
    ADD COLUMN override  boolean NOT NULL DEFAULT false;
CREATE INDEX matches_standing ON matches (placement_id) WHERE state IN ('proposed', 'accepted', 'confirmed');

-- A coordinator's assignment of a student by hand (MatchAssignmentRequested), until matching
-- proposes it (MatchProposed with the same match id) or refuses it (MatchCancelled). A requested
-- one holds its slot in the meantime.
CREATE TABLE assignments (
    match_id                   uuid PRIMARY KEY,
    region                     text NOT NULL,
    student_id                 text NOT NULL,
    placement_id               text NOT NULL,
    reason                     text NOT NULL,
    override_hard_constraints  boolean NOT NULL,
    constraints_overridden     text[] NOT NULL DEFAULT '{}',
    requested_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assignments_placement ON assignments (placement_id);

-- A student's language for their notices (sv, fi, en); NULL: the region's (SE-* sv, FI-* fi).
ALTER TABLE students ADD COLUMN language text CHECK (language IN ('sv', 'fi', 'en'));
