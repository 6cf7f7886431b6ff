-- Notices to students (recipient 'student:<id>'): proposed, confirmed, unplaced with next steps,
-- invited to a supplementary round. A notice about no match has neither match nor placement.
-- Still ids only: the student's name, address and language come from the placements service's
-- student notice context at send time and are never written here.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check CHECK (kind IN (
    'proposed', 'confirmed', 'cancelled', 'digest',
    'student_proposed', 'student_confirmed', 'student_unplaced', 'student_supplementary'));
ALTER TABLE deliveries ALTER COLUMN placement_id DROP NOT NULL;
