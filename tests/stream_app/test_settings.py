"""Settings: read once from ``RFM_*`` variables, frozen, and passable to another process."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_app.settings import Clock, Compression, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``RFM_*`` variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("RFM_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.orders_topic, settings.changes_topic, settings.dlq_topic) == (
        "orders",
        "segment-changes",
        "orders.dlq",
    )
    assert settings.clock is Clock.EVENT
    assert settings.model_dir == Path("model")
    assert settings.key_prefix == "rfm"


def test_reads_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFM_KAFKA_BOOTSTRAP", "broker:29092")
    monkeypatch.setenv("RFM_REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("RFM_MODEL_DIR", "/srv/models")
    monkeypatch.setenv("RFM_ORDERS_TOPIC", "shop.orders")
    monkeypatch.setenv("RFM_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("RFM_CLOCK", "wall")
    monkeypatch.setenv("RFM_BATCH_WINDOW_S", "0.25")
    monkeypatch.setenv("RFM_KEY_PREFIX", "test")
    settings = Settings()
    assert settings.kafka_bootstrap == "broker:29092"
    assert settings.redis_url == "redis://cache:6380/2"
    assert settings.model_dir == Path("/srv/models")
    assert settings.orders_topic == "shop.orders"
    assert settings.topic_partitions == 12
    assert settings.clock is Clock.WALL
    assert settings.batch_window_s == 0.25
    assert settings.key_prefix == "test"
    # Untouched fields keep their defaults.
    assert settings.changes_topic == "segment-changes"


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "elsewhere:9092")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RFM_TOPIC_PARTITIONS", "0"),
        ("RFM_TOPIC_PARTITIONS", "many"),
        ("RFM_BATCH_SIZE", "0"),
        ("RFM_BATCH_WINDOW_S", "0"),
        ("RFM_CLOCK", "sundial"),
    ],
)
def test_bad_values_are_rejected_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    field = name.removeprefix("RFM_").lower()
    assert field in str(info.value)


def test_is_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.kafka_bootstrap = "other:9092"  # type: ignore[misc]
    assert settings.kafka_bootstrap == "127.0.0.1:9092"


def test_to_env_names_every_field_with_the_prefix() -> None:
    settings = Settings()
    env = settings.to_env()
    # Settings left unset (None) stay unset in the other process.
    unset = {name for name in Settings.model_fields if getattr(settings, name) is None}
    assert unset == {
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "redis_ssl_ca_certs",
        "api_keys",
    }
    assert set(env) == {
        f"RFM_{name.upper()}" for name in Settings.model_fields if name not in unset
    }
    assert env["RFM_CLOCK"] == "event"
    assert env["RFM_TOPIC_PARTITIONS"] == "4"
    assert all(isinstance(value, str) for value in env.values())


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        kafka_bootstrap="a:1,b:2",
        redis_url="redis://r:7000/3",
        model_dir=Path("/tmp/some model"),
        dlq_topic="dead",
        topic_partitions=7,
        clock=Clock.WALL,
        batch_size=17,
        batch_window_s=0.125,
        session_timeout_s=12.5,
        web_port=7077,
        key_prefix="k",
        kafka_compression=Compression.ZSTD,
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    assert rebuilt == original
    assert rebuilt.to_env() == original.to_env()


def test_kafka_url_single_host() -> None:
    assert Settings(kafka_bootstrap="127.0.0.1:9092").kafka_url == "kafka://127.0.0.1:9092"


def test_kafka_url_several_hosts() -> None:
    settings = Settings(kafka_bootstrap="k1:9092, k2:9093 ,k3:9094")
    assert settings.kafka_url == "kafka://k1:9092;kafka://k2:9093;kafka://k3:9094"


def test_compression_names_the_producers_codec() -> None:
    assert Settings().compression_type is None  # none by default
    assert Settings(kafka_compression="zstd").compression_type == "zstd"
    with pytest.raises(ValidationError, match="'gzip', 'snappy', 'lz4' or 'zstd'"):
        Settings(kafka_compression="brotli")


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A file to stand for a certificate (Settings only checks that it exists)."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_security_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    monkeypatch.setenv("RFM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RFM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("RFM_KAFKA_SASL_USERNAME", "rfm")
    monkeypatch.setenv("RFM_KAFKA_SASL_PASSWORD", "pw-0b7c")
    monkeypatch.setenv("RFM_KAFKA_SSL_CAFILE", str(pem))
    monkeypatch.setenv("RFM_REDIS_URL", "rediss://rfm:pw-redis@cache:6380/0")
    monkeypatch.setenv("RFM_REDIS_SSL_CA_CERTS", str(pem))
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "pw-0b7c"
    assert "pw-0b7c" not in repr(settings) and "pw-0b7c" not in str(settings)
    assert settings.kafka_ssl_cafile == settings.redis_ssl_ca_certs == pem


def test_to_env_passes_the_password_itself(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    original = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="rfm",
        kafka_sasl_password="pw-0b7c",
        kafka_ssl_cafile=pem,
    )
    env = original.to_env()
    assert env["RFM_KAFKA_SASL_PASSWORD"] == "pw-0b7c"
    assert env["RFM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["RFM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "RFM_KAFKA_SSL_CERTFILE" not in env  # unset stays unset
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "rfm"},
            "RFM_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RFM_KAFKA_SASL_USERNAME and "
            "RFM_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": "pw"},
            "needs RFM_KAFKA_SASL_USERNAME",
        ),
        (
            {"kafka_sasl_username": "rfm", "kafka_sasl_password": "pw"},
            "RFM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        ({"kafka_ssl_cafile": "PEM"}, "RFM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "rfm",
             "kafka_sasl_password": "pw", "kafka_ssl_cafile": "PEM"},
            "RFM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "PEM"},
            "RFM_KAFKA_SSL_KEYFILE is set without RFM_KAFKA_SSL_CERTFILE",
        ),
        ({"redis_ssl_ca_certs": "PEM"}, "RFM_REDIS_URL is not a rediss:// (TLS) URL"),
        ({"redis_url": "http://cache:6379"}, "expected a redis://, rediss:// or unix:// URL"),
        ({"kafka_security_protocol": "TLS"}, "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'"),
    ],
)  # fmt: skip
def test_security_settings_that_cannot_work_are_refused(
    values: dict[str, str], message: str, pem: Path
) -> None:
    given = {name: str(pem) if value == "PEM" else value for name, value in values.items()}
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**given)  # type: ignore[arg-type]


def test_a_certificate_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_cafile"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
