"""Configuration of the stream, read once from the environment (prefix ``RFM_``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_training.data.rules import NON_PRODUCT_PATTERN, ProductRule
from stream_app.core.limits import Limits

__all__ = ["Clock", "Compression", "Settings"]


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
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis DSN")
    model_dir: Path = Field(Path("model"), description="Directory written by `rfm train`")
    orders_topic: str = "orders"
    changes_topic: str = "segment-changes"
    dlq_topic: str = "orders.dlq"
    topic_partitions: int = Field(4, ge=1)
    app_id: str = Field("rfm-segments", description="Kafka consumer group of the workers")
    clock: Clock = Clock.EVENT
    batch_size: int = Field(500, ge=1, description="Events applied per Redis round trip")
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
    def product_rule(self) -> ProductRule:
        """The rule that tells products from other stock codes."""
        return ProductRule(self.non_product_pattern)

    def to_env(self) -> dict[str, str]:
        """The ``RFM_*`` environment variables that rebuild these settings in another process."""
        return {
            f"RFM_{name.upper()}": str(value.value if isinstance(value, StrEnum) else value)
            for name, value in self.model_dump().items()
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
