"""The highest-sequence rule, the same in memory and in SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.segment_subscriber import MemoryView, SegmentChange, SegmentView, SqliteView

T0 = datetime(2011, 12, 1, tzinfo=UTC)


def change(customer: str, sequence: int, segment: str | None = None) -> SegmentChange:
    """The change number ``sequence`` of ``customer`` (its segment named after the number)."""
    return SegmentChange(
        customer_id=customer,
        segment=segment or f"segment-{sequence}",
        previous_segment=None if sequence <= 1 else f"segment-{sequence - 1}",
        sequence=sequence,
        reason="order",
        occurred_at=T0 + timedelta(hours=sequence),
        model_version="v1",
    )


@pytest.fixture(params=["memory", "sqlite"])
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SegmentView]:
    made: SegmentView = MemoryView() if request.param == "memory" else SqliteView(tmp_path / "s.db")
    yield made
    made.close()


def test_changes_in_order_keep_the_last(view: SegmentView) -> None:
    assert [view.apply(change("a", n)) for n in (1, 2, 3)] == [True, True, True]
    assert view.get("a") == change("a", 3)


def test_a_repeat_is_dropped(view: SegmentView) -> None:
    """A worker that restarts publishes its last change again, with the same sequence."""
    assert view.apply(change("a", 1))
    assert view.apply(change("a", 2))
    assert not view.apply(change("a", 2))
    assert view.get("a") == change("a", 2)


def test_a_late_lower_sequence_is_dropped(view: SegmentView) -> None:
    """Another worker's older change of the customer arrives after the newer one."""
    assert view.apply(change("a", 3, "loyal"))
    assert not view.apply(change("a", 2, "at_risk"))
    assert view.get("a") == change("a", 3, "loyal")


def test_out_of_order_ends_at_the_highest(view: SegmentView) -> None:
    for n in (2, 4, 1, 3):
        view.apply(change("a", n))
    assert view.get("a") == change("a", 4)


def test_customers_are_kept_apart(view: SegmentView) -> None:
    view.apply(change("a", 5))
    view.apply(change("b", 1))
    view.apply(change("b", 2))
    view.commit()
    assert view.current() == {"a": change("a", 5), "b": change("b", 2)}
    assert view.get("c") is None


def test_sqlite_view_outlives_a_restart(tmp_path: Path) -> None:
    first = SqliteView(tmp_path / "s.db")
    first.apply(change("a", 2))
    first.commit()
    first.apply(change("a", 3))  # not committed: read again from the topic after a restart
    first.close()
    again = SqliteView(tmp_path / "s.db")
    assert again.current() == {"a": change("a", 2)}
    assert not again.apply(change("a", 1))
    assert again.apply(change("a", 3))
    again.close()


deliveries = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(min_value=0, max_value=6)), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(deliveries)
def test_any_order_with_repeats_ends_at_each_customers_highest(
    sent: list[tuple[str, int]],
) -> None:
    views: list[SegmentView] = [MemoryView(), SqliteView(":memory:")]
    for view in views:
        for customer, sequence in sent:
            view.apply(change(customer, sequence))
        highest: dict[str, int] = {}
        for customer, sequence in sent:
            highest[customer] = max(sequence, highest.get(customer, sequence))
        assert view.current() == {c: change(c, n) for c, n in highest.items()}
        view.close()
