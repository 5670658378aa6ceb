"""The bodies the Profile API answers with (pydantic: /openapi.json describes them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stream_app.core.events import SegmentChange

__all__ = [
    "CustomerHistory",
    "CustomerProfile",
    "CustomerRow",
    "DailySegments",
    "DaySizes",
    "Flow",
    "Flows",
    "Health",
    "MeanMedian",
    "ModelVersion",
    "Models",
    "PartitionLag",
    "Problem",
    "SegmentMembers",
    "SegmentStats",
    "Segments",
    "StreamInfo",
]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Body):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class Health(_Body):
    """The server answers."""

    status: Literal["ok"] = "ok"


class CustomerProfile(_Body):
    """One customer's RFM (at the stream clock), segment and orders."""

    customer_id: str
    segment: str | None
    label: str | None = Field(description="The segment's human label")
    action: str | None = Field(description="The marketing action recommended for the segment")
    segment_since: datetime | None
    model_version: str | None
    recency_days: int | None = Field(description="Days since the last order, at the clock")
    frequency: int
    monetary: float
    first_order: datetime | None
    last_order: datetime | None
    country: str
    clock: datetime | None = Field(description="The stream clock the RFM is computed at")
    as_of: datetime | None = Field(
        None, description="With ?as_of: the moment `segment` was held at (from the history)"
    )


class CustomerHistory(_Body):
    """A customer's recent segment changes, newest first."""

    customer_id: str
    changes: list[SegmentChange]


class MeanMedian(_Body):
    """The mean and median of one RFM dimension over a segment's customers (null: none)."""

    mean: float | None
    median: float | None


class SegmentStats(_Body):
    """One segment: size, share of customers and revenue, RFM means and medians."""

    name: str
    label: str
    action: str | None
    customers: int
    customer_share: float
    revenue_share: float
    recency_days: MeanMedian
    frequency: MeanMedian
    monetary: MeanMedian


class Segments(_Body):
    """Every segment, largest revenue share first."""

    model_version: str | None
    clock: datetime | None
    customers: int
    segments: list[SegmentStats]


class CustomerRow(_Body):
    """One customer of a segment's list (RFM at the stream clock)."""

    customer_id: str
    recency_days: int
    frequency: int
    monetary: float
    country: str
    last_order: datetime | None


class SegmentMembers(_Body):
    """One page of a segment's customers, in id order (on a Redis Cluster: by hash slot,
    then id)."""

    segment: str
    customers: list[CustomerRow]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: end")


class DaySizes(_Body):
    """Segment sizes at the end of one stream-clock day."""

    date: str
    segments: dict[str, int]


class DailySegments(_Body):
    """Segment sizes day by day."""

    days: list[DaySizes]


class Flow(_Body):
    """Customers who moved from one segment to another for one reason."""

    from_segment: str | None = Field(description="null for a customer's first segment")
    to_segment: str
    reason: Literal["order", "recency", "retrain"]
    customers: int


class Flows(_Body):
    """The segment changes over a range of stream-clock days (inclusive)."""

    since: str | None
    until: str | None
    flows: list[Flow]


class ModelVersion(_Body):
    """One stored model version."""

    version: str
    created_at: str | None
    current: bool


class Models(_Body):
    """Every stored model version, oldest first, and the one served."""

    current: str | None
    versions: list[ModelVersion]


class PartitionLag(_Body):
    """The workers' lag on one orders partition."""

    topic: str
    partition: int
    lag: int


class StreamInfo(_Body):
    """The stream at a glance (as ``rfm status``)."""

    clock: datetime | None
    events_applied: int
    events_per_s: float | None = Field(description="Over the last minute or so; null at first")
    lag: int | None = Field(description="Sum over the partitions; null if Kafka is unreachable")
    partitions: list[PartitionLag]
    dead_letters: int | None
    workers: dict[str, dict[str, Any]]
