-- The W3C trace context (shared/tracing.py) of the transaction that wrote the row: the relay
-- publishes the row as a child of it, so one trace follows a request through the outbox and Kafka.
-- NULL when the writer was in no trace (tracing off and no traceparent came in).
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE outbox ADD COLUMN tracestate text;
