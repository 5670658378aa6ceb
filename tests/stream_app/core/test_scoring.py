"""Segment changes: only for customers whose predicted segment differs from the stored one."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from stream_app.core.scoring import rfm_matrix, segment_changes
from stream_app.core.state import CustomerState

DAY = 86_400.0
NOW = datetime(2011, 12, 10, tzinfo=UTC).timestamp()


class ThresholdModel:
    """``loyal`` from ``min_orders`` purchase invoices on, ``new`` below; records its input."""

    def __init__(self, min_orders: int = 3, version: str = "v-test") -> None:
        self.min_orders = min_orders
        self._version = version
        self.seen: list[npt.NDArray[np.float64]] = []

    @property
    def version(self) -> str:
        return self._version

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        self.seen.append(rfm.copy())
        return np.where(rfm[:, 1] >= self.min_orders, "loyal", "new")


def customer(
    customer_id: str,
    frequency: int,
    *,
    days_ago: float = 2.0,
    spent: float = 100.0,
    returned: float = 0.0,
    segment: str | None = None,
    sequence: int = 0,
) -> CustomerState:
    last = NOW - days_ago * DAY
    return CustomerState(
        customer_id,
        frequency=frequency,
        spent=spent,
        returned_matched=returned,
        first_purchase=last - 30 * DAY if frequency else None,
        last_purchase=last if frequency else None,
        segment=segment,
        sequence=sequence,
    )


def test_first_segment_has_no_previous_and_sequence_one() -> None:
    [change] = segment_changes([customer("a", 5)], ThresholdModel(), NOW, "order")
    assert change.customer_id == "a"
    assert change.previous_segment is None
    assert change.segment == "loyal"
    assert change.sequence == 1


def test_only_changed_customers_are_emitted() -> None:
    states = [
        customer("stays-loyal", 5, segment="loyal", sequence=4),
        customer("promoted", 5, segment="new", sequence=2),
        customer("stays-new", 1, segment="new", sequence=1),
        customer("demoted", 1, segment="loyal", sequence=7),
    ]
    changes = segment_changes(states, ThresholdModel(), NOW, "order")
    assert [(c.customer_id, c.previous_segment, c.segment, c.sequence) for c in changes] == [
        ("promoted", "new", "loyal", 3),
        ("demoted", "loyal", "new", 8),
    ]


def test_customers_without_rfm_are_not_scored() -> None:
    model = ThresholdModel()
    returns_only = CustomerState("r", frequency=0, returned_matched=0.0)
    changes = segment_changes([returns_only, customer("a", 1)], model, NOW, "order")
    assert [change.customer_id for change in changes] == ["a"]
    assert len(model.seen) == 1
    assert model.seen[0].shape == (1, 3)


def test_nothing_to_score_does_not_call_the_model() -> None:
    model = ThresholdModel()
    assert segment_changes([CustomerState("r")], model, NOW, "recency") == []
    assert segment_changes([], model, NOW, "recency") == []
    assert model.seen == []


@pytest.mark.parametrize("reason", ["order", "recency", "retrain"])
def test_reason_is_passed_through(reason: str) -> None:
    [change] = segment_changes([customer("a", 1)], ThresholdModel(), NOW, reason)  # type: ignore[arg-type]
    assert change.reason == reason


def test_event_carries_rfm_version_and_time() -> None:
    state = customer("a", 4, days_ago=9.5, spent=1234.5678, returned=34.5)
    [change] = segment_changes([state], ThresholdModel(version="2011-12-10-abc"), NOW, "order")
    assert change.rfm.recency_days == 9
    assert change.rfm.frequency == 4
    assert change.rfm.monetary == pytest.approx(1200.07)
    assert change.model_version == "2011-12-10-abc"
    assert change.occurred_at == datetime(2011, 12, 10, tzinfo=UTC)


def test_model_sees_recency_at_now() -> None:
    model = ThresholdModel()
    state = customer("a", 2, days_ago=3.25, spent=50.0)
    segment_changes([state], model, NOW + 10 * DAY, "recency")
    assert model.seen[0].tolist() == [[13.0, 2.0, 50.0]]


def test_rfm_matrix_rows_follow_states() -> None:
    states = [customer("a", 1, days_ago=1.0, spent=10.0), customer("b", 6, days_ago=40.9)]
    assert rfm_matrix(states, NOW).tolist() == [[1.0, 1.0, 10.0], [40.0, 6.0, 100.0]]


def test_recency_change_moves_a_customer() -> None:
    # A model keyed on recency: the same state changes segment as time passes.
    class Recency(ThresholdModel):
        def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
            return np.where(rfm[:, 0] > 30, "sleeping", "active")

    state = customer("a", 2, days_ago=0.0, segment="active", sequence=1)
    assert segment_changes([state], Recency(), NOW + 30 * DAY, "recency") == []
    [change] = segment_changes([state], Recency(), NOW + 31 * DAY, "recency")
    assert (change.previous_segment, change.segment, change.sequence) == ("active", "sleeping", 2)
    assert change.rfm.recency_days == 31
