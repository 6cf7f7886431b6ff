-- Issue 18: teachers' working-life periods. Who a profile, a placement and a round are for
-- (`student` or `teacher`, the contract's `participant` / `kind`): a round loads only its own
-- participants and the placements of their kind, never both.
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

DROP INDEX students_region;
CREATE INDEX students_region ON students (region, participant) WHERE NOT withdrawn;
CREATE INDEX placements_region_kind ON placements (region, kind) WHERE NOT withdrawn;
