-- Supervisor readiness (docs/placements.md "Supervisor readiness").

-- One row per placement supervisor, by e-mail (lower case) within a company: the day they
-- completed the region's supervisor course (NULL: not started, or cleared by a coordinator),
-- when it was recorded and by whom (the role: supervisor through their link, or coordinator).
CREATE TABLE supervisors (
    company_id   text NOT NULL,
    email        text NOT NULL CHECK (email = lower(email)),
    trained_on   date,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    recorded_by  text,
    PRIMARY KEY (company_id, email)
);

-- A region's readiness settings (no row: the defaults): its course's address, how many years a
-- course counts, and whether a match is confirmed only once the supervisor is ready.
CREATE TABLE region_settings (
    region             text PRIMARY KEY,
    course_url         text,
    validity_years     integer NOT NULL DEFAULT 3 CHECK (validity_years BETWEEN 1 AND 50),
    require_readiness  boolean NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A supervisor's signed link may also record their course (single use, like the others).
ALTER TABLE action_links_used DROP CONSTRAINT action_links_used_action_check;
ALTER TABLE action_links_used ADD CONSTRAINT action_links_used_action_check
    CHECK (action IN ('confirm', 'decline', 'training'));

-- The reminders before a placement starts look for confirmed matches.
CREATE INDEX matches_confirmed ON matches (match_id) WHERE state = 'confirmed';
