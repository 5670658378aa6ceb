"""Segments that change as time passes: due times, the decay step, clock events, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.scoring import HORIZON_DAYS, change_driver, next_change_times
from stream_app.core.state import CustomerState
from stream_app.service.ports import RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.store.memory import MemoryStore
from tests.fakes import MemoryPublisher

DAY = 86_400.0
START = datetime(2011, 6, 1, 10, tzinfo=UTC)


class RecencyModel:
    """``active`` up to 30 days, ``at_risk`` up to 90, then ``lost``."""

    version = "v-recency"

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        recency = rfm[:, 0]
        return np.where(recency <= 30, "active", np.where(recency <= 90, "at_risk", "lost"))


class CentroidModel:
    """Nearest of fixed centroids in log space: convex regions, like KMeans."""

    version = "v-centroids"

    def __init__(self, centroids: npt.NDArray[np.float64]) -> None:
        self.centroids = centroids

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        z = np.log1p(np.maximum(rfm, 0))
        distances = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return np.array([f"s{i}" for i in distances.argmin(axis=1)])


def purchase(event_id: str, customer: str, at: datetime) -> RawMessage:
    event = {
        "event_id": event_id,
        "kind": "purchase",
        "order_id": event_id,
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "lines": [{"sku": "22423", "quantity": 1, "unit_price": 10.0}],
    }
    return RawMessage(customer.encode(), json.dumps(event).encode(), "orders", 0, 0)


def clock_event(at: datetime) -> RawMessage:
    payload = json.dumps({"kind": "clock", "occurred_at": at.isoformat()}).encode()
    return RawMessage(b"clock", payload, "orders", 0, 1)


def test_due_time_is_the_first_day_the_segment_changes() -> None:
    state = CustomerState("7", frequency=1, spent=10.0, last_purchase=0.0)
    due = next_change_times([state], RecencyModel(), now=5 * DAY)
    assert due == [31 * DAY]
    later = next_change_times([state], RecencyModel(), now=40 * DAY)
    assert later == [91 * DAY]
    never = next_change_times([state], RecencyModel(), now=200 * DAY)
    assert never == [(200 + HORIZON_DAYS) * DAY]  # looked at again at the horizon


def test_customers_without_a_purchase_are_not_scheduled() -> None:
    assert next_change_times([CustomerState("9")], RecencyModel(), now=DAY) == [None]


@settings(max_examples=40, deadline=None)
@given(
    recency=st.integers(0, 900),
    frequency=st.integers(1, 60),
    monetary=st.floats(0, 50_000),
    seed=st.integers(0, 1000),
)
def test_bisection_finds_the_same_day_as_a_daily_scan(
    recency: int, frequency: int, monetary: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    centroids = np.column_stack([rng.uniform(0, 7, 5), rng.uniform(0, 4, 5), rng.uniform(2, 11, 5)])
    model = CentroidModel(centroids)
    now = recency * DAY + 3600.0
    state = CustomerState("c", frequency=frequency, spent=monetary, last_purchase=0.0)
    [due] = next_change_times([state], model, now)
    base = np.array([[recency, frequency, monetary]], dtype=np.float64)
    start = model.predict_segments(base)[0]
    days = np.arange(1, HORIZON_DAYS + 1)
    grid = np.repeat(base, len(days), axis=0)
    grid[:, 0] += days
    differs = np.flatnonzero(model.predict_segments(grid) != start)
    expected = recency + (days[differs[0]] if len(differs) else HORIZON_DAYS)
    assert due == expected * DAY


async def test_time_passing_moves_a_customer_without_an_order() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    processor = BatchProcessor(store, publisher, RecencyModel)
    await processor.handle([purchase("1", "c1", START)])
    assert [c.segment for c in publisher.changes] == ["active"]

    await processor.handle([clock_event(START + timedelta(days=20))])
    assert await processor.decay() == 0  # not due yet

    await processor.handle([clock_event(START + timedelta(days=45))])
    assert await processor.decay() == 1
    change = publisher.changes[-1]
    assert (change.previous_segment, change.segment, change.reason) == (
        "active",
        "at_risk",
        "recency",
    )
    assert change.driver == "recency"
    assert change.previous_rfm is not None and change.previous_rfm.recency_days == 0
    assert change.rfm.recency_days == 45
    assert change.sequence == 2
    state = await store.get("c1")
    assert state is not None and state.segment == "at_risk"

    await processor.handle([clock_event(START + timedelta(days=200))])
    assert await processor.decay() == 1
    assert publisher.changes[-1].segment == "lost"
    assert await store.clock() == (START + timedelta(days=200)).timestamp()


async def test_decay_work_follows_the_customers_due() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    processor = BatchProcessor(store, publisher, RecencyModel)
    # 500 customers bought recently, 7 bought 25 days before the others.
    early = [purchase(f"e{n}", f"old{n}", START) for n in range(7)]
    recent = [purchase(f"r{n}", f"new{n}", START + timedelta(days=25)) for n in range(500)]
    await processor.handle(early + recent)
    await processor.handle([clock_event(START + timedelta(days=35))])
    assert await store.due_count(until=(START + timedelta(days=35)).timestamp()) == 7
    assert await processor.decay() == 7
    assert {c.customer_id for c in publisher.changes if c.reason == "recency"} == {
        f"old{n}" for n in range(7)
    }


async def test_a_new_model_rescores_everyone_with_reason_retrain() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    model: list[object] = [RecencyModel()]
    processor = BatchProcessor(store, publisher, lambda: model[0])  # type: ignore[arg-type,return-value]
    await processor.handle([purchase(str(n), f"c{n}", START) for n in range(5)])

    class Everyone:
        version = "v2"

        def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
            return np.full(len(rfm), "champions")

    model[0] = Everyone()
    assert await processor.rescore_all("retrain") == 5
    retrained = [c for c in publisher.changes if c.reason == "retrain"]
    assert len(retrained) == 5
    assert all(c.driver == "model" and c.model_version == "v2" for c in retrained)
    assert await processor.rescore_all("retrain") == 0  # nothing left to change


def test_driver_names_the_dimension_that_moved_most() -> None:
    assert change_driver("order", (1, 1, 100.0), (0, 6, 130.0)) == "frequency"
    assert change_driver("order", (60, 3, 100.0), (0, 4, 130.0)) == "recency"
    assert change_driver("order", (3, 2, 100.0), (0, 2, 90_000.0)) == "monetary"
    assert change_driver("order", None, (0, 1, 10.0)) is None
    assert change_driver("recency", (3, 2, 100.0), (40, 2, 100.0)) == "recency"


async def test_a_decay_step_that_dies_loses_nobody() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    processor = BatchProcessor(store, publisher, RecencyModel)
    await processor.handle([purchase("1", "c1", START)])
    later = (START + timedelta(days=45)).timestamp()
    await store.advance_clock(later)
    # A worker takes the due customer and dies before re-scoring it.
    assert await store.pop_due(later, 10, lease_s=3600.0) == ["c1"]
    assert await processor.decay() == 0  # leased: nobody else takes it meanwhile
    await store.advance_clock(later + 3601)
    assert await processor.decay() == 1  # the lease ran out: re-scored after all
    assert publisher.changes[-1].segment == "at_risk"


async def test_due_customers_without_rfm_are_forgotten() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    processor = BatchProcessor(store, publisher, RecencyModel, retry_delay_s=0.001)
    await processor.handle([purchase("1", "a", START)])
    # A customer with only a return has no RFM: due once (say, scheduled by an older worker),
    # they are taken, not scored, and not scheduled again.
    await store.schedule({"ghost": START.timestamp()})
    await processor.decay()
    assert await store.due_count() == 1  # only "a"
