-- A student has at most one standing match (proposed, accepted or confirmed), as in the
-- matching service's read model: a proposal for a student who holds one is refused (and, after
-- its retries, dead-lettered) instead of giving them two. Should an earlier release have stored
-- two, the newest stands and the older ones are closed as superseded before the index is made.
UPDATE matches SET state = 'cancelled', reason = 'superseded', updated_at = now()
WHERE match_id IN (
    SELECT match_id FROM (
        SELECT match_id,
               row_number() OVER (PARTITION BY student_id ORDER BY created_at DESC, match_id) AS n
        FROM matches WHERE state IN ('proposed', 'accepted', 'confirmed')
    ) standing
    WHERE n > 1
);
CREATE UNIQUE INDEX matches_one_standing_per_student
    ON matches (student_id) WHERE state IN ('proposed', 'accepted', 'confirmed');
