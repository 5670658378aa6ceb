"""What a worker exposes about itself: Prometheus metrics and the readiness rule."""

from __future__ import annotations

from stream_app.observability.metrics import WorkerMetrics
from stream_app.observability.probes import Readiness, readiness

__all__ = ["Readiness", "WorkerMetrics", "readiness"]
