-- Contract v1 addition: every topic has one writer. The placements service's decisions on
-- matches (MatchAccepted, MatchDeclined, MatchAssignmentRequested) moved from apl.matches.v1 to
-- apl.match-decisions.v1, its round requests (MatchingRoundRequested, SupplementaryRoundOpened)
-- from apl.rounds.v1 to apl.round-requests.v1. Rows enqueued before move with their types, so an
-- unsent one is published where this service may write, and the per-region counts
-- (MatchingRoundRequested.inputs_published) follow: this service never wrote anything else on
-- the old topics.
UPDATE outbox SET topic = 'apl.match-decisions.v1'
WHERE topic = 'apl.matches.v1'
  AND event_type IN ('MatchAccepted', 'MatchDeclined', 'MatchAssignmentRequested');
UPDATE outbox SET topic = 'apl.round-requests.v1'
WHERE topic = 'apl.rounds.v1'
  AND event_type IN ('MatchingRoundRequested', 'SupplementaryRoundOpened');
UPDATE outbox_counts SET topic = 'apl.match-decisions.v1' WHERE topic = 'apl.matches.v1';
UPDATE outbox_counts SET topic = 'apl.round-requests.v1' WHERE topic = 'apl.rounds.v1';
