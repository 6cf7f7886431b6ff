-- Issue 18: teachers' working-life periods. A participant record (`students`) is a student's or
-- a teacher's (`participant`, kept on the tombstone of an erased record); a placement is for
-- students or a working-life period for teachers (`kind`); a round places one or the other
-- (`participant`). The profile and the offer jsonb carry the same values as published.
ALTER TABLE students
    ADD COLUMN participant text NOT NULL DEFAULT 'student'
        CHECK (participant IN ('student', 'teacher'));
ALTER TABLE placements
    ADD COLUMN kind text NOT NULL DEFAULT 'student' CHECK (kind IN ('student', 'teacher'));
ALTER TABLE rounds
    ADD COLUMN participant text NOT NULL DEFAULT 'student'
        CHECK (participant IN ('student', 'teacher'));

UPDATE students SET participant = 'teacher' WHERE profile ->> 'participant' = 'teacher';
UPDATE placements SET kind = 'teacher' WHERE offer ->> 'kind' = 'teacher';

CREATE INDEX students_region_participant ON students (region, participant)
    WHERE withdrawn_at IS NULL;
CREATE INDEX placements_region_kind ON placements (region, kind) WHERE withdrawn_at IS NULL;
CREATE INDEX rounds_region_participant
    ON rounds (region, participant, completed_at DESC) WHERE status = 'completed' AND NOT dry_run;
