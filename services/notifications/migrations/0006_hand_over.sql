-- At most one e-mail sent again per crash (services/notifications/handover.py): the moment the
-- mail server accepted a notice's message is committed on its row, one message at a time, before
-- the next message's DATA. A claim that ran out with `handed_over_at` set (the process died before
-- the outcome was recorded) is recorded as delivered without sending the message again.
ALTER TABLE deliveries ADD COLUMN handed_over_at timestamptz;
