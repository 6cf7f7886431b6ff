-- Reminders before a placement starts (docs/notifications.md "Reminders before a placement
-- starts"): one notice to the supervisor ('reminder') and one to the student
-- ('student_reminder') per confirmed match, `reminder_days` before its placement's first day.
-- Their source is the match, not an event: `source_event_id` = uuid5(NAMESPACE,
-- 'reminder:<match_id>'), so UNIQUE (source_event_id, recipient) keeps each reminder once per
-- match and recipient however often, and by however many processes, the due matches are read.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check CHECK (kind IN (
    'proposed', 'confirmed', 'cancelled', 'digest',
    'student_proposed', 'student_confirmed', 'student_unplaced', 'student_supplementary',
    'reminder', 'student_reminder'));
