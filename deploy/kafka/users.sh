#!/usr/bin/env bash
# Creates or updates the SCRAM-SHA-512 user of each service, as the admin: compose's one-shot
# `kafka-users` step (and the tests' container) runs it once the broker is healthy, at every
# `docker compose up`, so a changed secret takes effect there. Passwords come from secret files:
# kafka_admin_password, placements_kafka_password, matching_kafka_password,
# notifications_kafka_password. What each user may do is said by the ACLs `apl init` creates.
set -euo pipefail

kafka_home="${KAFKA_HOME:-/opt/kafka}"
secrets="${APL_SECRETS_DIR:-/run/secrets}"
bootstrap="${APL_KAFKA_BOOTSTRAP:-kafka:9092}"

secret() { tr -d '\r\n' < "$secrets/$1"; }
umask 077
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
cat > "$config" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret kafka_admin_password)";
PROPERTIES

for service in placements matching notifications; do
  "$kafka_home/bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$config" \
    --alter --entity-type users --entity-name "$service" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(secret "${service}_kafka_password")]"
done
