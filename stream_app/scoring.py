"""Decide segment changes from customer states, a model and the stream clock (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from stream_app.events import RFMValues, SegmentChange
from stream_app.state import CustomerState

__all__ = ["SegmentModel", "rfm_matrix", "segment_changes"]

Reason = Literal["order", "recency", "retrain"]


class SegmentModel(Protocol):
    """What the stream needs of a trained model."""

    @property
    def version(self) -> str:
        """The model's version id."""
        ...

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        """Segment names for rows of ``(recency_days, frequency, monetary)``."""
        ...


def rfm_matrix(states: Sequence[CustomerState], now: float) -> npt.NDArray[np.float64]:
    """Rows of ``(recency_days, frequency, monetary)`` at ``now`` for states with RFM."""
    matrix = np.empty((len(states), 3), dtype=np.float64)
    for row, state in enumerate(states):
        matrix[row] = state.rfm(now)
    return matrix


def segment_changes(
    states: Sequence[CustomerState],
    model: SegmentModel,
    now: float,
    reason: Reason,
) -> list[SegmentChange]:
    """The change events for the customers whose predicted segment differs from the stored one.

    Customers without a valid purchase have no RFM and get no segment. Each change carries the
    next per-customer sequence number.

    Examples
    --------
    >>> class Threshold:
    ...     version = "v1"
    ...     def predict_segments(self, rfm):
    ...         return np.where(rfm[:, 1] > 1, "loyal", "new")
    >>> state = CustomerState("7", frequency=2, spent=30.0, last_purchase=0.0)
    >>> [(c.segment, c.previous_segment, c.sequence)
    ...  for c in segment_changes([state], Threshold(), now=86_400.0, reason="order")]
    [('loyal', None, 1)]
    """
    scored = [state for state in states if state.has_rfm]
    if not scored:
        return []
    matrix = rfm_matrix(scored, now)
    names = model.predict_segments(matrix)
    occurred_at = datetime.fromtimestamp(now, tz=UTC)
    changes = []
    for state, name, row in zip(scored, names, matrix, strict=True):
        segment = str(name)
        if segment == state.segment:
            continue
        changes.append(
            SegmentChange(
                customer_id=state.customer_id,
                previous_segment=state.segment,
                segment=segment,
                reason=reason,
                rfm=RFMValues(
                    recency_days=int(row[0]), frequency=int(row[1]), monetary=round(row[2], 2)
                ),
                model_version=model.version,
                occurred_at=occurred_at,
                sequence=state.sequence + 1,
            )
        )
    return changes
