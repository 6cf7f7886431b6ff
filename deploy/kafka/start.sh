#!/usr/bin/env bash
# The compose Kafka (and the tests' container where Docker answers): one KRaft node, clients
# authenticated with SASL/SCRAM-SHA-512 and authorised by ACLs, no PLAINTEXT listener, the
# controller's listener on loopback with SASL/PLAIN and a static `controller` user. The same
# settings as `apl infra up` writes for the local broker (devtools/localinfra.py).
#
# On an empty data volume the storage is formatted with the SCRAM user `admin` (the super user
# that creates topics and ACLs, `apl init`); deploy/kafka/users.sh adds the services' users.
# Passwords come from secret files: kafka_admin_password, kafka_controller_password.
set -euo pipefail

kafka_home="${KAFKA_HOME:-/opt/kafka}"
secrets="${APL_SECRETS_DIR:-/run/secrets}"
data="${APL_KAFKA_DATA:-/var/lib/kafka/data}"
port="${APL_KAFKA_PORT:-9092}"
controller_port="${APL_KAFKA_CONTROLLER_PORT:-9093}"
advertised="${APL_KAFKA_ADVERTISED:-kafka:9092}"
conf="${APL_KAFKA_CONFIG_DIR:-/tmp/apl-kafka}"
: "${CLUSTER_ID:?set CLUSTER_ID (kafka-storage.sh random-uuid)}"

secret() { tr -d '\r\n' < "$secrets/$1"; }
admin_password="$(secret kafka_admin_password)"
controller_password="$(secret kafka_controller_password)"

mkdir -p "$conf"
umask 077
scram=org.apache.kafka.common.security.scram.ScramLoginModule
plain=org.apache.kafka.common.security.plain.PlainLoginModule
cat > "$conf/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller_port}
listeners=CLIENT://:${port},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=CLIENT://${advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=${scram} required username="admin" password="${admin_password}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=${plain} required username="controller" password="${controller_password}" user_controller="${controller_password}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
log.dirs=${data}
num.partitions=12
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPERTIES

# The admin's client settings: the healthcheck's, users.sh's and an operator's
# (`kafka-acls.sh --bootstrap-server localhost:9092 --command-config /tmp/apl-kafka/admin.properties`).
cat > "$conf/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=${scram} required username="admin" password="${admin_password}";
PROPERTIES

if [[ ! -e "$data/meta.properties" ]]; then
  "$kafka_home/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" \
    --config "$conf/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_password}]"
fi
exec "$kafka_home/bin/kafka-server-start.sh" "$conf/server.properties"
