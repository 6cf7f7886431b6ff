-- A round's proposals, counted when a student's notice asks for the vacancies the round left
-- (`RoundRepository.settled`).
CREATE INDEX matches_round ON matches (round_id) WHERE round_id IS NOT NULL;
