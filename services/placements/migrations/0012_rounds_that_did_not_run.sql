-- A requested round the matching service completed without running it (its inputs never
-- arrived in time: MatchingRoundCompleted with status inputs_missing): status 'failed', and
-- why in `failure`, for the coordinator.
ALTER TABLE rounds DROP CONSTRAINT IF EXISTS rounds_status_check;
ALTER TABLE rounds ADD CONSTRAINT rounds_status_check
    CHECK (status IN ('requested', 'completed', 'failed'));
ALTER TABLE rounds ADD COLUMN IF NOT EXISTS failure text;
