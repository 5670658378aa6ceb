"""Batch/stream agreement on synthetic data: bootstrap == replay == the batch pipeline's RFM.

The synthetic file has what makes the real one hard: returns (some of more than was bought,
some of items never bought), non-product codes, zero prices, anonymous lines, exact duplicate
lines and invoices keyed in across a minute boundary.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.data.rules import ProductRule
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.core.effects import order_effect
from stream_app.core.events import InvalidEvent, parse_order_event
from stream_app.core.state import CustomerState
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import ReplayPlan, build_events
from stream_app.store.memory import MemoryStore
from tests.conftest import FrameBuilder

CUSTOMERS = 300
SEED = 20111210

#: Edge cases appended to the synthetic rows (InvoiceNo ... Country, as in the file).
EDGE_ROWS = [
    # Returns only: events, but no RFM row.
    ("C900001", "85123A", "HEART", -3, "2011-05-02 10:00:00", 2.55, "99001.0", "France"),
    # Postage only, and a free sample only: events, but no valid purchase.
    ("900002", "POST", "POSTAGE", 1, "2011-05-02 11:00:00", 18.0, "99002.0", "Spain"),
    ("900003", "22423", "CAKESTAND", 1, "2011-05-02 12:00:00", 0.0, "99002.0", "Spain"),
    # Two invoices at the same minute: the larger invoice number gives the country.
    ("900005", "22423", "CAKESTAND", 1, "2011-06-01 09:00:00", 12.75, "99003.0", "Norway"),
    ("900004", "22424", "CAKESTAND", 2, "2011-06-01 09:00:00", 10.0, "99003.0", "EIRE"),
    # One invoice keyed in across a minute boundary, its first line a non-product.
    ("900006", "POST", "POSTAGE", 1, "2011-07-01 09:59:00", 18.0, "99004.0", "USA"),
    ("900006", "22424", "CAKESTAND", 2, "2011-07-01 10:00:00", 10.0, "99004.0", "USA"),
    # A return of more than was bought, at another price.
    ("C900007", "22424", "CAKESTAND", -5, "2011-07-02 10:00:00", 9.0, "99004.0", "USA"),
]


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A synthetic file written and read back the way ``rfm replay --input`` reads it."""
    path: Path = tmp_path_factory.mktemp("synth") / "transactions.csv.gz"
    synthetic = generate_transactions(customers=CUSTOMERS, seed=SEED)
    edges = pd.DataFrame(EDGE_ROWS, columns=synthetic.columns)
    write_transactions(pd.concat([synthetic, edges], ignore_index=True), path)
    return load_transactions(path)


@pytest.fixture(scope="module")
def plan(frame: pd.DataFrame) -> ReplayPlan:
    return build_events(frame)


def replayed(events: list[tuple[bytes, bytes]]) -> dict[str, CustomerState]:
    """The state a worker builds from these events (parse -> effect -> store)."""

    async def run() -> dict[str, CustomerState]:
        store = MemoryStore()
        effects = [order_effect(parse_order_event(value)) for _, value in events]
        for first in range(0, len(effects), 200):
            await store.apply(effects[first : first + 200])
        states: dict[str, CustomerState] = {}
        for customer_id in {effect.customer_id for effect in effects}:
            state = await store.get(customer_id)
            assert state is not None
            states[customer_id] = state
        return states

    return asyncio.run(run())


@pytest.fixture(scope="module")
def stream_states(plan: ReplayPlan) -> dict[str, CustomerState]:
    return replayed(plan.events)


def assert_same_state(actual: CustomerState, expected: CustomerState) -> None:
    who = actual.customer_id
    assert actual.customer_id == expected.customer_id
    assert actual.orders == expected.orders, who
    assert actual.digests == expected.digests, who
    assert actual.frequency == expected.frequency, who
    assert actual.first_purchase == expected.first_purchase, who
    assert actual.last_purchase == expected.last_purchase, who
    assert actual.last_order == expected.last_order, who
    assert actual.country == expected.country, who
    assert actual.spent == pytest.approx(expected.spent, abs=1e-6), who
    assert actual.returned_matched == pytest.approx(expected.returned_matched, abs=1e-6), who
    assert actual.monetary == pytest.approx(expected.monetary, abs=1e-6), who
    assert actual.items.keys() == expected.items.keys(), who
    for sku, totals in expected.items.items():
        got = actual.items[sku]
        assert (got.bought, got.returned) == (totals.bought, totals.returned), (who, sku)
        assert got.returned_value == pytest.approx(totals.returned_value, abs=1e-6), (who, sku)


def test_the_synthetic_file_exercises_every_rule(frame: pd.DataFrame, plan: ReplayPlan) -> None:
    counts = clean_transactions(frame).counts
    for rule in ("missing_customer_or_description", "duplicate_lines", "non_product", "zero_price"):
        assert counts[rule] > 0, rule
    kinds = {b'"kind":"return"' in value for _, value in plan.events}
    assert kinds == {True, False}


def test_edge_customers(stream_states: dict[str, CustomerState]) -> None:
    assert stream_states["99003"].country == "Norway"
    assert stream_states["99003"].frequency == 2
    split = stream_states["99004"]
    assert split.first_purchase == datetime(2011, 7, 1, 9, 59, tzinfo=UTC).timestamp()
    # 2 bought for 20.0; 5 returned for 45.0 of which 2 count (at 9.0 each).
    assert split.monetary == pytest.approx(20.0 - 18.0)


def test_bootstrap_equals_replaying_every_event(
    frame: pd.DataFrame, plan: ReplayPlan, stream_states: dict[str, CustomerState]
) -> None:
    boot = {state.customer_id: state for state in bootstrap_states(frame)}
    assert boot.keys() == stream_states.keys()
    assert len(boot) >= CUSTOMERS * 0.9
    for customer_id, state in stream_states.items():
        assert_same_state(boot[customer_id], state)


def test_bootstrap_follows_the_product_rule(frame: pd.DataFrame, plan: ReplayPlan) -> None:
    default = {state.customer_id: state for state in bootstrap_states(frame)}
    postage_counts = {
        state.customer_id: state
        for state in bootstrap_states(frame, ProductRule(r"BANK CHARGES|D|M"))
    }
    assert not default["99002"].has_rfm
    assert postage_counts["99002"].has_rfm  # postage only: a purchase under this rule
    assert postage_counts["99002"].monetary == pytest.approx(18.0)
    assert "POST" in postage_counts["99004"].items and "POST" not in default["99004"].items


def test_replay_in_any_order_and_twice_gives_the_same_state(
    plan: ReplayPlan, stream_states: dict[str, CustomerState]
) -> None:
    events = plan.events + plan.events[: len(plan.events) // 3]
    random.Random(5).shuffle(events)
    shuffled = replayed(events)
    assert shuffled.keys() == stream_states.keys()
    for customer_id, state in stream_states.items():
        assert_same_state(shuffled[customer_id], state)


@pytest.mark.parametrize("t_ref", [None, datetime(2012, 2, 29, 17, 45, 31)])
def test_stream_rfm_equals_batch_rfm(
    frame: pd.DataFrame, stream_states: dict[str, CustomerState], t_ref: datetime | None
) -> None:
    clean = clean_transactions(frame)
    reference = t_ref or default_reference_time(clean, frame)
    batch = compute_rfm(clean, reference)
    now = reference.replace(tzinfo=UTC).timestamp()

    with_rfm = {cid: state for cid, state in stream_states.items() if state.has_rfm}
    assert set(with_rfm) == set(batch.index)
    # Customers with events but no valid purchase (returns only, postage only) have no row.
    assert set(stream_states) - set(with_rfm) == {"99001", "99002"}
    for customer_id, row in batch.iterrows():
        state = with_rfm[str(customer_id)]
        recency, frequency, monetary = state.rfm(now)
        assert recency == row["recency_days"], customer_id
        assert frequency == row["frequency"], customer_id
        assert monetary == pytest.approx(row["monetary"], abs=1e-6), customer_id
        assert state.country == row["country"], customer_id
        first = pd.Timestamp(row["first_purchase"]).tz_localize("UTC").timestamp()
        assert state.first_purchase == first, customer_id


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("CustomerID", "12 345", "customer_id '12 345'"),
        ("StockCode", "X" * 65, "sku 'XXX"),
        ("Quantity", 2_000_000, "event 1: .*quantity"),
    ],
)
def test_bootstrap_refuses_what_the_workers_would_not_apply(
    make_frame: FrameBuilder, column: str, value: str, problem: str
) -> None:
    row = {
        "InvoiceNo": "1", "StockCode": "85123A", "Description": "HEART", "Quantity": 6,
        "InvoiceDate": "2011-01-10 10:00:00", "UnitPrice": 2.55, "CustomerID": "17850",
        "Country": "UK", column: value,
    }  # fmt: skip
    with pytest.raises(InvalidEvent, match=problem):
        bootstrap_states(make_frame([tuple(row.values())]))
