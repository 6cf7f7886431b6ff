"""The matching service's rules, as pure functions over plain data (no Kafka, no Postgres)."""
