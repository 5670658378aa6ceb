"""The pure state arithmetic: apply-once, order-independent, returns matched per stock code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.effects import ItemDelta, OrderEffect
from stream_app.core.state import CustomerState, ItemTotals, apply_effect


def at(day: int, hour: int = 12) -> float:
    return datetime(2011, 3, day, hour, tzinfo=UTC).timestamp()


def purchase(
    event_id: str, when: float, *items: tuple[str, int, float], country: str = "UK"
) -> OrderEffect:
    deltas = tuple(ItemDelta(sku, units, units * price) for sku, units, price in items)
    return OrderEffect.of("c1", event_id, False, when, country, deltas)


def ret(event_id: str, when: float, *items: tuple[str, int, float]) -> OrderEffect:
    deltas = tuple(ItemDelta(sku, units, units * price) for sku, units, price in items)
    return OrderEffect.of("c1", event_id, True, when, "Returnland", deltas)


def apply_all(effects: Iterable[OrderEffect]) -> CustomerState:
    state = CustomerState("c1")
    for effect in effects:
        state, _ = apply_effect(state, effect)
    return state


def test_new_customer_has_no_rfm() -> None:
    state = CustomerState("c1")
    assert not state.has_rfm
    with pytest.raises(ValueError, match="c1"):
        state.recency_days(at(1))


def test_purchase_sets_every_field() -> None:
    state, applied = apply_effect(
        CustomerState("c1"), purchase("1", at(3), ("A", 2, 1.5), ("B", 1, 10.0), country="France")
    )
    assert applied
    assert state.frequency == 1
    assert state.spent == pytest.approx(13.0)
    assert state.monetary == pytest.approx(13.0)
    assert state.first_purchase == state.last_purchase == at(3)
    assert (state.last_order, state.country) == ("1", "France")
    assert state.items == {"A": ItemTotals(bought=2), "B": ItemTotals(bought=1)}
    assert state.orders == frozenset({"1"})
    assert state.has_rfm


def test_recency_is_floor_of_whole_days() -> None:
    state = apply_all([purchase("1", at(3, 12), ("A", 1, 1.0))])
    assert state.recency_days(at(3, 23)) == 0
    assert state.recency_days(at(4, 11)) == 0
    assert state.recency_days(at(4, 12)) == 1
    assert state.recency_days(at(10, 0)) == 6
    recency, frequency, monetary = state.rfm(at(10, 0))
    assert (recency, frequency) == (6, 1)
    assert monetary == pytest.approx(1.0)


def test_return_after_purchase_subtracts_matched_value() -> None:
    state = apply_all([purchase("1", at(1), ("A", 10, 2.5)), ret("C2", at(2), ("A", 4, 2.0))])
    assert state.frequency == 1
    assert state.spent == pytest.approx(25.0)
    assert state.returned_matched == pytest.approx(8.0)
    assert state.monetary == pytest.approx(17.0)
    totals = state.items["A"]
    assert (totals.bought, totals.returned) == (10, 4)
    assert totals.returned_value == pytest.approx(8.0)


def test_return_before_purchase_gives_the_same_state() -> None:
    buy = purchase("1", at(1), ("A", 10, 2.5))
    give_back = ret("C2", at(2), ("A", 4, 2.0))
    early = apply_effect(CustomerState("c1"), give_back)[0]
    # Nothing bought yet: the return is kept for later matching but counts for nothing.
    assert early.returned_matched == 0.0
    assert early.frequency == 0
    assert not early.has_rfm
    assert early.items["A"] == ItemTotals(bought=0, returned=4, returned_value=8.0)
    later = apply_effect(early, buy)[0]
    assert later.monetary == pytest.approx(17.0)
    assert later == apply_all([buy, give_back])


def test_more_returned_than_bought_counts_only_bought_units() -> None:
    state = apply_all([purchase("1", at(1), ("A", 2, 3.0)), ret("C2", at(2), ("A", 5, 2.0))])
    # min(5, 2) = 2 units at the return's mean price 2.0.
    assert state.returned_matched == pytest.approx(4.0)
    assert state.monetary == pytest.approx(2.0)


def test_return_of_an_item_never_bought_changes_nothing_monetary() -> None:
    state = apply_all([purchase("1", at(1), ("A", 2, 3.0)), ret("C2", at(2), ("B", 5, 2.0))])
    assert state.monetary == pytest.approx(6.0)
    assert state.items["B"].returned == 5


def test_returns_are_valued_at_their_mean_price() -> None:
    state = apply_all(
        [
            purchase("1", at(1), ("A", 3, 5.0)),
            ret("C2", at(2), ("A", 2, 1.0)),
            ret("C3", at(3), ("A", 2, 4.0)),
        ]
    )
    # 4 returned for 10.0 (mean 2.5); 3 matched -> 7.5.
    assert state.returned_matched == pytest.approx(7.5)
    assert state.monetary == pytest.approx(15.0 - 7.5)


def test_return_does_not_touch_recency_country_or_frequency() -> None:
    bought = apply_all([purchase("1", at(1), ("A", 3, 5.0), country="UK")])
    after = apply_effect(bought, ret("C9", at(20), ("A", 1, 5.0)))[0]
    assert (after.frequency, after.last_purchase, after.country, after.last_order) == (
        1,
        at(1),
        "UK",
        "1",
    )
    assert "C9" in after.orders


def test_duplicate_event_is_a_no_op() -> None:
    effect = purchase("1", at(1), ("A", 3, 5.0))
    once, applied = apply_effect(CustomerState("c1"), effect)
    twice, applied_again = apply_effect(once, effect)
    assert applied
    assert not applied_again
    assert twice is once


def test_duplicate_id_with_other_content_is_still_ignored() -> None:
    once = apply_all([purchase("1", at(1), ("A", 3, 5.0))])
    again, applied = apply_effect(once, purchase("1", at(9), ("B", 100, 5.0)))
    assert not applied
    assert again == once


def test_purchase_without_valid_lines_is_recorded_but_not_counted() -> None:
    state, applied = apply_effect(CustomerState("c1"), purchase("1", at(1)))
    assert applied
    assert state.orders == frozenset({"1"})
    assert state.frequency == 0
    assert state.first_purchase is None
    assert not state.has_rfm


def test_latest_purchase_sets_country_whatever_the_arrival_order() -> None:
    old = purchase("1", at(1), ("A", 1, 1.0), country="France")
    new = purchase("2", at(5), ("A", 1, 1.0), country="Germany")
    for order in ([old, new], [new, old]):
        state = apply_all(order)
        assert state.country == "Germany"
        assert state.last_order == "2"
        assert (state.first_purchase, state.last_purchase) == (at(1), at(5))


def test_same_time_tie_is_broken_by_the_larger_event_id() -> None:
    low = purchase("536400", at(2), ("A", 1, 1.0), country="France")
    high = purchase("536401", at(2), ("A", 1, 1.0), country="Spain")
    for order in ([low, high], [high, low]):
        state = apply_all(order)
        assert (state.country, state.last_order) == ("Spain", "536401")


def test_frequency_counts_distinct_purchase_events() -> None:
    state = apply_all(
        [
            purchase("1", at(1), ("A", 1, 1.0)),
            purchase("2", at(2), ("A", 1, 1.0)),
            purchase("2", at(2), ("A", 1, 1.0)),
            ret("C3", at(3), ("A", 1, 1.0)),
            purchase("4", at(4)),
        ]
    )
    assert state.frequency == 2
    assert state.orders == frozenset({"1", "2", "C3", "4"})


# --- property: any order, any duplicates, same state -----------------------------------------

_SKUS = st.sampled_from(["A", "B", "C", "D"])
_DELTAS = st.lists(
    st.tuples(
        _SKUS,
        st.integers(min_value=1, max_value=50),
        st.floats(min_value=0.01, max_value=500.0, allow_nan=False),
    ),
    max_size=3,
    unique_by=lambda item: item[0],
).map(lambda items: tuple(ItemDelta(sku, units, units * price) for sku, units, price in items))


@st.composite
def effect_lists(draw: st.DrawFn) -> list[OrderEffect]:
    count = draw(st.integers(min_value=1, max_value=12))
    effects = []
    for number in range(count):
        is_return = draw(st.booleans())
        effects.append(
            OrderEffect.of(
                customer_id="c1",
                event_id=("C" if is_return else "") + f"{number:03d}",
                is_return=is_return,
                # Few distinct times, so that ties (broken by event id) happen often.
                occurred_at=at(draw(st.integers(min_value=1, max_value=4))),
                country=draw(st.sampled_from(["UK", "France", "Spain"])),
                items=draw(_DELTAS),
            )
        )
    return effects


def _expected_monetary(effects: Sequence[OrderEffect]) -> float:
    """docs/design.md's formula, computed from scratch."""
    spent = sum(d.value for e in effects if not e.is_return for d in e.items)
    matched = 0.0
    for sku in {d.sku for e in effects for d in e.items}:
        bought = sum(d.units for e in effects if not e.is_return for d in e.items if d.sku == sku)
        returned = [d for e in effects if e.is_return for d in e.items if d.sku == sku]
        units = sum(d.units for d in returned)
        if units:
            matched += min(units, bought) * sum(d.value for d in returned) / units
    return spent - matched


def _assert_same(actual: CustomerState, expected: CustomerState) -> None:
    assert actual.frequency == expected.frequency
    assert actual.monetary == pytest.approx(expected.monetary, rel=1e-9, abs=1e-6)
    assert actual.spent == pytest.approx(expected.spent, rel=1e-9, abs=1e-6)
    assert actual.first_purchase == expected.first_purchase
    assert actual.last_purchase == expected.last_purchase
    assert actual.last_order == expected.last_order
    assert actual.country == expected.country
    assert actual.orders == expected.orders
    assert actual.items.keys() == expected.items.keys()
    for sku, totals in expected.items.items():
        got = actual.items[sku]
        assert (got.bought, got.returned) == (totals.bought, totals.returned)
        assert got.returned_value == pytest.approx(totals.returned_value, rel=1e-9, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), effects=effect_lists())
def test_any_order_with_duplicates_gives_the_same_state(
    data: st.DataObject, effects: list[OrderEffect]
) -> None:
    reference = apply_all(effects)
    repeats = data.draw(st.lists(st.sampled_from(effects), max_size=len(effects)))
    shuffled = data.draw(st.permutations([*effects, *repeats]))
    _assert_same(apply_all(shuffled), reference)


@settings(max_examples=50, deadline=None)
@given(effects=effect_lists())
def test_state_matches_the_design_formulas(effects: list[OrderEffect]) -> None:
    state = apply_all(effects)
    purchases = [e for e in effects if e.counts_as_purchase]
    assert state.frequency == len(purchases)
    assert state.monetary == pytest.approx(_expected_monetary(effects), rel=1e-9, abs=1e-6)
    if purchases:
        latest = max(purchases, key=lambda e: (e.occurred_at, e.event_id))
        assert state.first_purchase == min(e.occurred_at for e in purchases)
        assert (state.last_purchase, state.country) == (latest.occurred_at, latest.country)
    else:
        assert not state.has_rfm
