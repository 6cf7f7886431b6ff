"""How a Kafka client connects, as whom (`shared.kafka_client.KafkaConnection`): the same
options for raw aiokafka clients and FastStream's broker."""

from __future__ import annotations

import ssl

import certifi
from faststream.kafka.security import parse_security
from pydantic import SecretStr

from shared.kafka_client import KafkaConnection


def test_raw_clients_and_the_broker_get_the_same_options() -> None:
    kafka = KafkaConnection("k:9092", "matching", SecretStr("pw"))
    options = kafka.client_options()
    assert options == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "matching",
        "sasl_plain_password": "pw",
        "ssl_context": None,
    }
    from_broker = parse_security(kafka.broker_security())
    assert {k: options[k] for k in from_broker} == from_broker


def test_a_managed_cluster_takes_sasl_ssl_with_its_ca() -> None:
    kafka = KafkaConnection(
        "broker.example:9096",
        "matching",
        SecretStr("pw"),
        security_protocol="SASL_SSL",
        ca_file=certifi.where(),
    )
    options = kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert parse_security(kafka.broker_security())["security_protocol"] == "SASL_SSL"
    assert KafkaConnection("k:1", security_protocol="PLAINTEXT").broker_security() is None


def test_environment_gives_a_process_one_principal() -> None:
    kafka = KafkaConnection("k:9092", "matching", SecretStr("pw"))
    env = kafka.environment("matching")
    assert env["APL_MATCHING_KAFKA_USERNAME"] == "matching"
    assert env["APL_MATCHING_KAFKA_PASSWORD"] == "pw"
    assert not [k for k in env if "ADMIN" in k or "PLACEMENTS" in k]
    assert kafka.environment()["APL_KAFKA_ADMIN_PASSWORD"] == "pw"
