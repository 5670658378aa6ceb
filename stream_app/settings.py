"""Configuration of the stream, read once from the environment (prefix ``RFM_``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_training.data.rules import NON_PRODUCT_PATTERN, ProductRule
from stream_app.core.limits import Limits

__all__ = ["Clock", "Compression", "KafkaSecurity", "SaslMechanism", "Settings"]


class Clock(StrEnum):
    """Where "now" comes from when recency is computed."""

    EVENT = "event"  # the largest event time seen (replays, tests)
    WALL = "wall"  # the machine's clock (live)


class Compression(StrEnum):
    """Codec of the messages the service publishes (it reads every codec whatever this is)."""

    NONE = "none"
    GZIP = "gzip"
    SNAPPY = "snappy"
    LZ4 = "lz4"
    ZSTD = "zstd"


class KafkaSecurity(StrEnum):
    """How clients reach Kafka: in the clear or over TLS, with or without SASL."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is encrypted (and the broker's certificate checked)."""
        return self in (KafkaSecurity.SSL, KafkaSecurity.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        """Whether the client authenticates with a user name and password."""
        return self in (KafkaSecurity.SASL_PLAINTEXT, KafkaSecurity.SASL_SSL)


class SaslMechanism(StrEnum):
    """The SASL mechanisms a user name and password can log in with."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class Settings(BaseSettings):
    """Every setting of the service. Built once at start-up and passed down.

    Each field is read from ``RFM_<NAME>``, e.g. ``RFM_KAFKA_BOOTSTRAP=127.0.0.1:9092``.
    """

    model_config = SettingsConfigDict(env_prefix="RFM_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_compression: Compression = Field(
        Compression.NONE,
        description="Codec of the messages the workers and tools publish "
        "(changes, dead letters, replayed orders); orders are read in any codec",
    )
    kafka_security_protocol: KafkaSecurity = Field(
        KafkaSecurity.PLAINTEXT, description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        SaslMechanism.PLAIN, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (SASL_* only)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_* only)")
    kafka_ssl_cafile: FilePath | None = Field(
        None,
        description="CA certificates (PEM) the broker's certificate is checked against "
        "(SSL, SASL_SSL; default: the system's)",
    )
    kafka_ssl_certfile: FilePath | None = Field(
        None, description="Client certificate (PEM) for brokers that ask for one"
    )
    kafka_ssl_keyfile: FilePath | None = Field(None, description="Private key of the certificate")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis DSN: redis:// or rediss:// (TLS), ACL user as "
        "rediss://USER:PASSWORD@HOST:PORT/DB",
    )
    redis_ssl_ca_certs: FilePath | None = Field(
        None,
        description="CA certificates (PEM) Redis's certificate is checked against "
        "(rediss:// only; default: the system's)",
    )
    redis_cluster: bool = Field(
        False,
        description="RFM_REDIS_URL names one node of a Redis Cluster; the others are found from it",
    )
    redis_wait_replicas: int = Field(
        1,
        ge=0,
        description="On a Redis Cluster: replicas each write must reach (WAIT) before the "
        "offsets it covers are stored; 0 turns the wait off",
    )
    model_dir: Path = Field(Path("model"), description="Directory written by `rfm train`")
    orders_topic: str = "orders"
    changes_topic: str = "segment-changes"
    dlq_topic: str = "orders.dlq"
    topic_partitions: int = Field(4, ge=1)
    app_id: str = Field("rfm-segments", description="Kafka consumer group of the workers")
    clock: Clock = Clock.EVENT
    batch_size: int = Field(500, ge=1, description="Events applied per Redis round trip")
    history_length: int = Field(
        50,
        ge=1,
        le=1000,
        description="Segment changes kept per customer (rfm:{id}:history, about 300 bytes "
        "each: the largest part of a long-lived customer's memory, see docs/sizing.md)",
    )
    batch_window_s: float = Field(0.05, gt=0, description="Longest wait to fill a batch")
    fetch_wait_ms: int = Field(
        100, ge=1, description="Longest wait of the worker's fetch requests when little flows"
    )
    commit_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often a worker commits the offsets of processed events "
        "(what `rfm replay --wait` and lag monitors see)",
    )
    session_timeout_s: float = Field(10.0, gt=0, description="Kafka consumer session timeout")
    decay_interval_s: float = Field(
        1.0, gt=0, description="How often due customers are re-scored as time passes"
    )
    retrain_interval_s: float = Field(
        3600.0, ge=0, description="Retrain at most this often (0: only on `rfm retrain`)"
    )
    retrain_min_events: int = Field(
        1000, ge=0, description="Retrain only after this many events applied since the last"
    )
    model_refresh_s: float = Field(
        5.0, gt=0, description="How often a worker looks for a new current model version"
    )
    retrain_check_s: float = Field(5.0, gt=0, description="How often a worker looks")
    retrain_lock_s: float = Field(
        60.0, gt=0, description="Expiry of the retrain lock, renewed while a worker retrains"
    )
    rescore_lease_s: float = Field(
        60.0,
        gt=0,
        description="How long a re-score after a model switch may go without progress before "
        "another worker takes it over",
    )
    rescore_batch_size: int = Field(
        2000, ge=1, description="Keys looked at per step of the re-score after a model switch"
    )
    gate_min_silhouette: float = Field(0.15, description="Refuse a model below this silhouette")
    gate_min_segment_share: float = Field(
        0.01, ge=0, le=1, description="Refuse a model with a smaller segment"
    )
    gate_max_changed_share: float = Field(
        0.35, ge=0, le=1, description="Refuse a model that moves more customers than this"
    )
    web_port: int = Field(
        6066, ge=0, le=65535, description="Port of the worker's web server (/metrics, /ready)"
    )
    web_host: str = Field(
        "127.0.0.1", description="Address the worker's web server binds to (0.0.0.0: all)"
    )
    api_host: str = Field(
        "127.0.0.1",
        description="Address `rfm serve` binds to (keep it on loopback unless "
        "the API is behind TLS and RFM_API_KEYS are set: it serves personal data)",
    )
    api_port: int = Field(8000, ge=0, le=65535, description="Port `rfm serve` binds to")
    api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated keys of the Profile API (`Authorization: Bearer KEY`); "
        "unset: no key needed",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or as one JSON object per line"
    )
    key_prefix: str = Field("rfm", description="Prefix of every Redis key")
    non_product_pattern: str = Field(
        NON_PRODUCT_PATTERN,
        description="Regular expression matched against the whole stock code: codes it "
        "matches are not products (default: codes beginning with a letter)",
    )
    max_event_ahead_s: float = Field(
        86_400.0,
        ge=0,
        description="An order dated more than this after the wall clock is a dead letter",
    )
    max_quantity: int = Field(
        1_000_000,
        ge=1,
        # Redis scripts count units in doubles: exact up to 2^53.
        le=10**15,
        description="Largest quantity of one order line; above: dead letter",
    )
    max_unit_price: float = Field(
        1_000_000.0, gt=0, description="Largest unit price of one order line; above: dead letter"
    )
    max_order_value: float = Field(
        100_000_000.0, gt=0, description="Largest value of one order event; above: dead letter"
    )
    dlq_max_payload: int = Field(
        64 * 1024,
        ge=1024,
        description="Bytes of the original message a dead letter keeps (the rest is cut)",
    )

    @field_validator("non_product_pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        ProductRule(value)  # raises ValueError with the reason
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _consistent_security(self) -> Settings:
        protocol = self.kafka_security_protocol
        # A setting that would be silently ignored is refused: it says the deployment is not
        # what its operator thinks it is.
        if protocol.uses_sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"RFM_KAFKA_SECURITY_PROTOCOL={protocol} needs RFM_KAFKA_SASL_USERNAME and "
                "RFM_KAFKA_SASL_PASSWORD"
            )
        if not protocol.uses_sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            raise ValueError(
                "RFM_KAFKA_SASL_USERNAME / RFM_KAFKA_SASL_PASSWORD are set but "
                f"RFM_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL "
                "(SASL_PLAINTEXT or SASL_SSL)"
            )
        files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if not protocol.uses_tls and any(files):
            raise ValueError(
                "RFM_KAFKA_SSL_* files are set but "
                f"RFM_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS (SSL or SASL_SSL)"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("RFM_KAFKA_SSL_KEYFILE is set without RFM_KAFKA_SSL_CERTFILE")
        if self.redis_cluster and self.redis_url.startswith("unix://"):
            raise ValueError("RFM_REDIS_CLUSTER=true needs a redis:// or rediss:// URL of a node")
        if self.redis_ssl_ca_certs and not self.redis_url.startswith("rediss://"):
            raise ValueError(
                "RFM_REDIS_SSL_CA_CERTS is set but RFM_REDIS_URL is not a rediss:// (TLS) URL"
            )
        return self

    @property
    def limits(self) -> Limits:
        """The sanity bounds of order events."""
        return Limits(
            max_quantity=self.max_quantity,
            max_unit_price=self.max_unit_price,
            max_order_value=self.max_order_value,
            max_ahead_s=self.max_event_ahead_s,
        )

    @property
    def api_key_set(self) -> frozenset[str]:
        """The keys the Profile API accepts (empty: none needed).

        >>> sorted(Settings(api_keys=" k1, k2 ,").api_key_set)
        ['k1', 'k2']
        """
        if self.api_keys is None:
            return frozenset()
        return frozenset(
            key.strip() for key in self.api_keys.get_secret_value().split(",") if key.strip()
        )

    @property
    def product_rule(self) -> ProductRule:
        """The rule that tells products from other stock codes."""
        return ProductRule(self.non_product_pattern)

    def to_env(self) -> dict[str, str]:
        """The ``RFM_*`` environment variables that rebuild these settings in another process."""
        return {
            f"RFM_{name.upper()}": _env_value(value)
            for name, value in self.model_dump().items()
            if value is not None  # unset: the child process leaves it unset too
        }

    @property
    def compression_type(self) -> str | None:
        """The producers' ``compression_type`` (aiokafka's and faust's: ``None`` for none)."""
        return None if self.kafka_compression is Compression.NONE else self.kafka_compression.value

    @property
    def kafka_url(self) -> str:
        """The broker address in faust's ``kafka://`` form."""
        hosts = ";".join(f"kafka://{host.strip()}" for host in self.kafka_bootstrap.split(","))
        return hosts


def _env_value(value: object) -> str:
    """A setting's value as an environment variable holds it (secrets in the clear)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, StrEnum):
        return value.value
    return str(value)
