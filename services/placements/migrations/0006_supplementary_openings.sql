-- Supplementary rounds opened by a coordinator (SupplementaryRoundOpened): the students invited
-- to rank the vacancies, and until when. A student's page says an opening is waiting for them.
CREATE TABLE supplementary_openings (
    opening_id   uuid PRIMARY KEY,
    region       text NOT NULL,
    round_id     uuid,
    ranks_until  date,
    student_ids  text[] NOT NULL,
    opened_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX supplementary_openings_region ON supplementary_openings (region, opened_at);
CREATE INDEX supplementary_openings_students ON supplementary_openings USING gin (student_ids);
