-- The W3C trace context of the consumer that recorded the notice (`traceparent`, `tracestate`;
-- NULL outside a trace), so that its delivery, later and in another task, continues the story's
-- trace. Like the outbox's columns of the same names: ids of a trace, no personal data.
ALTER TABLE deliveries ADD COLUMN traceparent text, ADD COLUMN tracestate text;
