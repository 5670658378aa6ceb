"""Test doubles and builders shared by the test suites: fake models, publishers, events.

Test modules import from here, never from one another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from model_training.model.segmenter import RFMSegmenter
from stream_app.core.effects import ItemDelta, OrderEffect
from stream_app.core.events import DeadLetter, SegmentChange
from stream_app.service.ports import ChangeMessage, RawMessage

__all__ = [
    "V1",
    "V2",
    "V3",
    "FrequencyModel",
    "MemoryPublisher",
    "fitted_segmenter",
    "messages",
    "model_card",
    "order_event",
    "purchase_effect",
    "return_effect",
]

#: Model version ids as :func:`model_training.model.artifact.make_version` writes them.
V1 = "2024-01-01T00:00:00Z-0001"
V2 = "2024-02-01T00:00:00Z-0002"
V3 = "2024-03-01T00:00:00Z-0003"


class MemoryPublisher:
    """Collects what the processor publishes, and in which order."""

    def __init__(self) -> None:
        self.changes: list[SegmentChange] = []
        self.payloads: list[str] = []
        self.letters: list[DeadLetter] = []
        self.calls: list[str] = []

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        self.calls.append("changes")
        self.changes.extend(message.change for message in changes)
        self.payloads.extend(message.payload for message in changes)

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.calls.append("dead_letters")
        self.letters.extend(letters)


class FrequencyModel:
    """``loyal`` from two purchase invoices on, else ``new``."""

    version = "v-freq"

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        return np.where(rfm[:, 1] >= 2, "loyal", "new")


def fitted_segmenter(seed: int = 0) -> RFMSegmenter:
    """A small real segmenter (4 clusters) fitted on random RFM rows."""
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [rng.integers(0, 300, 120), rng.integers(1, 20, 120), rng.gamma(2.0, 500.0, 120)]
    ).astype(np.float64)
    return RFMSegmenter(n_clusters=4, n_init=1).fit(x)


def model_card(version: str, **extra: Any) -> dict[str, Any]:
    """The smallest model card the registry accepts for ``version``."""
    return {
        "version": version,
        "method": "kmeans",
        "trained_at": version[:19] + "Z",
        "t_ref": version[:19],
        "n_customers": 120,
        "n_segments": 4,
        "silhouette": 0.3,
        "classifier_accuracy": None,
        "segments": [],
        **extra,
    }


def order_event(
    event_id: str,
    customer: str,
    at: datetime,
    *,
    kind: str = "purchase",
    lines: list[dict[str, Any]] | None = None,
    country: str = "United Kingdom",
) -> bytes:
    """One order event as the shop publishes it (JSON bytes)."""
    event = {
        "event_id": event_id,
        "kind": kind,
        "order_id": event_id,
        "customer_id": customer,
        "occurred_at": at.astimezone(UTC).isoformat(),
        "country": country,
        "lines": lines or [{"sku": "85123A", "quantity": 2, "unit_price": 5.0}],
    }
    return json.dumps(event).encode()


def messages(*values: bytes, first_offset: int = 0, partition: int = 3) -> list[RawMessage]:
    """Broker messages of these values, keyed by their customer id when they have one."""
    batch = []
    for number, value in enumerate(values, start=first_offset):
        try:
            key = json.loads(value)["customer_id"].encode()
        except (ValueError, KeyError, TypeError):
            key = b"k"
        batch.append(RawMessage(key, value, "orders", partition, number))
    return batch


def purchase_effect(
    event_id: str,
    at: float,
    *items: tuple[str, int, float],
    customer: str = "c1",
    country: str = "UK",
) -> OrderEffect:
    """A validated purchase of ``(stock code, units, unit price)`` lines at epoch ``at``."""
    deltas = tuple(ItemDelta(sku, units, units * price) for sku, units, price in items)
    return OrderEffect.of(customer, event_id, False, at, country, deltas)


def return_effect(
    event_id: str, at: float, *items: tuple[str, int, float], customer: str = "c1"
) -> OrderEffect:
    """A validated return of ``(stock code, units, unit price)`` lines at epoch ``at``."""
    deltas = tuple(ItemDelta(sku, units, units * price) for sku, units, price in items)
    return OrderEffect.of(customer, event_id, True, at, "UK", deltas)
