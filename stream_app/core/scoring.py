"""Decide segment changes from customer states, a model and the stream clock (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from model_training.data.rules import SECONDS_PER_DAY
from stream_app.core.events import RFMValues, SegmentChange
from stream_app.core.state import CustomerState

__all__ = [
    "HORIZON_DAYS",
    "SegmentModel",
    "change_driver",
    "next_change_times",
    "rfm_matrix",
    "score",
    "segment_changes",
]

Reason = Literal["order", "recency", "retrain"]
Driver = Literal["recency", "frequency", "monetary", "model"]
DIMENSIONS: tuple[Driver, Driver, Driver] = ("recency", "frequency", "monetary")


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
    if not states:
        return np.empty((0, 3), dtype=np.float64)
    last = np.array([state.last_purchase for state in states], dtype=np.float64)
    if np.isnan(last).any():
        missing = next(state for state in states if state.last_purchase is None)
        raise ValueError(f"customer {missing.customer_id} has no purchase")
    matrix = np.empty((len(states), 3), dtype=np.float64)
    # The same floor as CustomerState.recency_days, for a whole batch at once.
    matrix[:, 0] = np.maximum(np.floor((now - last) / SECONDS_PER_DAY), 0)
    matrix[:, 1] = [state.frequency for state in states]
    matrix[:, 2] = [state.spent - state.returned_matched for state in states]
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
    return _changes(scored, matrix, model.predict_segments(matrix), model.version, now, reason)


def _changes(
    scored: Sequence[CustomerState],
    matrix: npt.NDArray[np.float64],
    names: npt.NDArray[np.str_],
    version: str,
    now: float,
    reason: Reason,
    sequence_floor: int = 0,
) -> list[SegmentChange]:
    occurred_at = datetime.fromtimestamp(now, tz=UTC)
    changes = []
    # Plain Python values, and models built without validation: every value is already typed
    # (ints, floats, names from the model), and a batch may hold thousands of changes.
    for state, segment, row in zip(scored, names.tolist(), matrix.tolist(), strict=True):
        if segment == state.segment:
            continue
        recency, frequency, monetary = row
        previous = state.segment_rfm
        changes.append(
            SegmentChange.model_construct(
                customer_id=state.customer_id,
                previous_segment=state.segment,
                segment=segment,
                reason=reason,
                rfm=RFMValues.model_construct(
                    recency_days=int(recency), frequency=int(frequency), monetary=round(monetary, 2)
                ),
                model_version=version,
                occurred_at=occurred_at,
                # Above every number of the store's earlier epochs (a store rebuilt after a
                # loss starts its customers at 0 again; consumers keep the highest).
                sequence=max(state.sequence, sequence_floor) + 1,
                previous_rfm=(
                    None
                    if previous is None
                    else RFMValues.model_construct(
                        recency_days=previous[0],
                        frequency=previous[1],
                        monetary=round(previous[2], 2),
                    )
                ),
                driver=change_driver(reason, previous, (recency, frequency, monetary)),
            )
        )
    return changes


def change_driver(
    reason: Reason,
    previous: tuple[float, float, float] | None,
    current: tuple[float, float, float],
) -> Driver | None:
    """Which dimension moved a customer.

    A new model moves them (``model``), time passing moves recency; for an order, the RFM
    dimension that changed most since the previous segment was assigned, measured on the
    log scale the model sees (``log1p``, monetary floored at 0), so a first order of a
    big spender reads as ``monetary`` and a repeat order as ``frequency``.

    >>> change_driver("order", (40, 3, 500.0), (0, 4, 560.0))
    'recency'
    >>> change_driver("order", (2, 3, 500.0), (0, 4, 5600.0))
    'monetary'
    >>> change_driver("retrain", None, (0, 1, 10.0))
    'model'
    """
    if reason == "retrain":
        return "model"
    if reason == "recency":
        return "recency"
    if previous is None:
        return None
    # Plain floats: three numbers per change, where numpy's call overhead would dominate.
    moves = [
        abs(math.log1p(max(float(now), 0.0)) - math.log1p(max(float(then), 0.0)))
        for then, now in zip(previous, current, strict=True)
    ]
    return DIMENSIONS[moves.index(max(moves))]


#: How far ahead (days of recency) the next segment change is looked for. A customer whose
#: segment does not change within it is looked at again when the horizon is reached.
HORIZON_DAYS = 1024


def next_change_times(
    states: Sequence[CustomerState], model: SegmentModel, now: float
) -> list[float | None]:
    """When, on the stream clock, each customer's segment changes if they buy nothing more.

    Only recency grows with time, so the segment is a function of one variable. For centroid
    models (KMeans, a classifier trained on centroid labels behaves alike) a segment's region is
    convex, so along growing recency a customer leaves their segment once and never comes
    back: the first day of change is found by bisection, with about log2(HORIZON_DAYS) model
    calls for the whole batch instead of one per day. For other models the bisection finds a
    change point, not always the first. ``None`` for customers without RFM; the horizon's end
    when no change lies within it (the customer is then looked at again).

    Examples
    --------
    >>> class Threshold:
    ...     version = "v1"
    ...     def predict_segments(self, rfm):
    ...         return np.where(rfm[:, 0] > 30, "at_risk", "active")
    >>> state = CustomerState("7", frequency=2, spent=30.0, last_purchase=0.0)
    >>> due = next_change_times([state], Threshold(), now=10 * 86_400.0)
    >>> due[0] / 86_400  # recency 31 days is the first "at_risk" day
    31.0
    """
    return score(states, model, now, "recency")[1]


def score(
    states: Sequence[CustomerState],
    model: SegmentModel,
    now: float,
    reason: Reason,
    sequence_floor: int = 0,
) -> tuple[list[SegmentChange], list[float | None]]:
    """:func:`segment_changes` and :func:`next_change_times` at once, predicting at ``now`` once.

    Each change's sequence is above ``sequence_floor`` (the store epoch's, see
    :mod:`stream_app.store.keys`) and above the customer's last one.

    >>> class Threshold:
    ...     version = "v1"
    ...     def predict_segments(self, rfm):
    ...         return np.where(rfm[:, 0] > 30, "at_risk", "active")
    >>> states = [CustomerState("7", frequency=2, spent=30.0, last_purchase=0.0),
    ...           CustomerState("8")]
    >>> changes, due = score(states, Threshold(), now=10 * 86_400.0, reason="order")
    >>> [(c.customer_id, c.segment) for c in changes], due[0] / 86_400, due[1]
    ([('7', 'active')], 31.0, None)
    """
    due: list[float | None] = [None] * len(states)
    rows = [row for row, state in enumerate(states) if state.has_rfm]
    if not rows:
        return [], due
    scored = [states[row] for row in rows]
    base = rfm_matrix(scored, now)
    names = model.predict_segments(base)
    changes = _changes(scored, base, names, model.version, now, reason, sequence_floor)
    for row, moment in zip(rows, _due_times(scored, base, names, model), strict=True):
        due[row] = moment
    return changes, due


def _due_times(
    scored: Sequence[CustomerState],
    base: npt.NDArray[np.float64],
    current: npt.NDArray[np.str_],
    model: SegmentModel,
) -> list[float]:
    """Due times of customers with RFM ``base`` now, in segments ``current`` (bisection)."""

    def segment_after(days: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
        future = base.copy()
        future[:, 0] = base[:, 0] + days
        return model.predict_segments(future)

    low = np.zeros(len(scored), dtype=np.int64)  # still the same segment at base + low
    high = np.full(len(scored), HORIZON_DAYS, dtype=np.int64)
    changes = segment_after(high) != current
    # Bisect only where a change lies within the horizon; others wake at the horizon.
    while True:
        active = changes & (high - low > 1)
        if not active.any():
            break
        middle = (low + high) // 2
        moved = segment_after(middle) != current
        high = np.where(active & moved, middle, high)
        low = np.where(active & ~moved, middle, low)
    last = np.array([state.last_purchase for state in scored], dtype=np.float64)
    when: list[float] = (last + (base[:, 0] + high) * SECONDS_PER_DAY).tolist()
    return when
