"""What the service reports as it works, for metrics: one small Protocol and a silent default.

The processor, the retrainer and the worker's retry paths call a :class:`Telemetry` where they
already know what happened (a batch's outcome, a change published, a retry), so reporting adds
no store call. The Prometheus adapter (:class:`stream_app.observability.metrics.WorkerMetrics`)
implements it outside the service layer; :class:`NoTelemetry` is the default, for tests and
tools that export nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from stream_app.core.scoring import Reason

__all__ = ["NoTelemetry", "Telemetry"]


class Telemetry(Protocol):
    """Receives what the service did; every method is cheap and never fails the caller."""

    def batch_processed(
        self,
        outcomes: Mapping[str, int],
        skipped_lines: Mapping[str, int],
        seconds: float,
    ) -> None:
        """A batch is done: events per outcome, order lines skipped per rule, processing time.

        ``outcomes`` has the keys ``applied``, ``duplicate``, ``dead_lettered`` and ``clock``.
        """

    def changes_published(
        self, reason: Reason, segments: Sequence[str], latencies_s: Sequence[float] = ()
    ) -> None:
        """Segment changes were published: the segment each moved to, and for changes caused
        by orders, seconds from each order's Kafka timestamp to its change being published."""

    def retrain_attempted(self, outcome: str) -> None:
        """A retrain attempt ended: ``accepted``, ``refused``, ``failed``, ``store_unavailable``."""

    def store_error(self, kind: str) -> None:
        """A store call failed (``unavailable``, ``refused``, ``lost``); ``store_retry`` follows
        when it is called again."""

    def store_retry(self) -> None:
        """A failed store call is made again."""

    def broker_error(self, kind: str) -> None:
        """A call to the broker failed (``publish``, ``commit``, ``unavailable``)."""

    def publish_retry(self) -> None:
        """A publish to the broker is sent again."""


class NoTelemetry:
    """A :class:`Telemetry` that keeps nothing."""

    def batch_processed(
        self,
        outcomes: Mapping[str, int],
        skipped_lines: Mapping[str, int],
        seconds: float,
    ) -> None:
        return None

    def changes_published(
        self, reason: Reason, segments: Sequence[str], latencies_s: Sequence[float] = ()
    ) -> None:
        return None

    def retrain_attempted(self, outcome: str) -> None:
        return None

    def store_error(self, kind: str) -> None:
        return None

    def store_retry(self) -> None:
        return None

    def broker_error(self, kind: str) -> None:
        return None

    def publish_retry(self) -> None:
        return None
