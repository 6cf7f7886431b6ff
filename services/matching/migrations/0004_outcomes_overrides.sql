-- Issue 14: filled and override matches, and the options of a round.
-- A filled match was placed by the fill phase at a vacancy the student did not rank (rank NULL);
-- an override was assigned by hand by a coordinator (MatchAssignmentRequested) and is pinned in
-- every later round, like a confirmed match.
ALTER TABLE matches
    ADD COLUMN filled          boolean NOT NULL DEFAULT false,
    ADD COLUMN override        boolean NOT NULL DEFAULT false,
    ADD COLUMN override_reason text;

-- kind: ordinary | supplementary. A dry run is recorded too (so a redelivered request is a
-- duplicate), but it wrote no match and does not count as the region's last round for
-- automatic mode.
ALTER TABLE rounds
    ADD COLUMN kind          text NOT NULL DEFAULT 'ordinary',
    ADD COLUMN fill          boolean NOT NULL DEFAULT false,
    ADD COLUMN dry_run       boolean NOT NULL DEFAULT false,
    ADD COLUMN outcome_parts integer NOT NULL DEFAULT 0;
