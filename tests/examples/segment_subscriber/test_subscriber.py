"""The subscriber reaches the broker as the service does, from the same RFM_* variables."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from examples.segment_subscriber import KafkaConfig, make_consumer
from stream_app.kafka.connection import client_options
from stream_app.settings import Settings


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(path)
    return path


def _sasl_ssl(ca_file: Path) -> Settings:
    return Settings(
        kafka_bootstrap="k1:9093,k2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="marketing",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=ca_file,
        changes_topic="prod.segment-changes",
    )


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"])
def test_same_options_as_the_service(protocol: str, ca_file: Path) -> None:
    settings = Settings(
        kafka_bootstrap="k1:9093",
        kafka_security_protocol=protocol,
        **(
            {"kafka_sasl_username": "marketing", "kafka_sasl_password": "s3cret"}
            if protocol.startswith("SASL_")
            else {}
        ),
        **({"kafka_ssl_cafile": ca_file} if protocol.endswith("SSL") else {}),
    )
    mine = KafkaConfig.from_env(settings.to_env()).client_options()
    theirs = client_options(settings)
    # TLS contexts are new objects each time: compare what they check instead.
    mine_context, their_context = mine.pop("ssl_context", None), theirs.pop("ssl_context", None)
    assert mine == theirs
    assert (mine_context is None) == (their_context is None)
    if isinstance(mine_context, ssl.SSLContext):
        assert mine_context.check_hostname and mine_context.verify_mode is ssl.CERT_REQUIRED
        assert mine_context.get_ca_certs() == their_context.get_ca_certs()  # type: ignore[union-attr]


async def test_topic_and_group(ca_file: Path) -> None:
    config = KafkaConfig.from_env(_sasl_ssl(ca_file).to_env())
    assert config.topic == "prod.segment-changes"
    consumer = make_consumer(config, "marketing-segments")
    assert consumer._group_id == "marketing-segments"
    assert consumer.subscription() == {"prod.segment-changes"}


def test_defaults_are_the_services() -> None:
    config = KafkaConfig.from_env({})
    defaults = Settings.model_fields
    assert config.bootstrap == defaults["kafka_bootstrap"].default
    assert config.topic == defaults["changes_topic"].default
    assert config.security_protocol == defaults["kafka_security_protocol"].default.value
    assert config.sasl_mechanism == defaults["kafka_sasl_mechanism"].default.value
