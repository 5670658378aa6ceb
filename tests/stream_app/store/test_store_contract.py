"""One contract for every customer-state store: Redis and in-memory behave the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from stream_app.core.effects import OrderEffect
from stream_app.core.state import CustomerState, ItemTotals
from stream_app.service.bootstrap import history_columns
from stream_app.service.ports import SegmentUpdate
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.conftest import FrameBuilder
from tests.fakes import purchase_effect, return_effect

Store = MemoryStore | RedisStore


def at(day: int, hour: int = 12) -> float:
    return datetime(2011, 1, day, hour, tzinfo=UTC).timestamp()


def purchase(
    event_id: str,
    day: int,
    *items: tuple[str, int, float],
    customer: str = "c1",
    country: str = "UK",
) -> OrderEffect:
    return purchase_effect(event_id, at(day), *items, customer=customer, country=country)


def ret(
    event_id: str, day: int, *items: tuple[str, int, float], customer: str = "c1"
) -> OrderEffect:
    return return_effect(event_id, at(day), *items, customer=customer)


def rfm_of(state: CustomerState | None) -> tuple[int, float, float | None, float | None, str]:
    assert state is not None
    return (
        state.frequency,
        round(state.monetary, 6),
        state.first_purchase,
        state.last_purchase,
        state.country,
    )


async def test_purchase_builds_state(store: Store) -> None:
    assert (await store.apply([purchase("1", 3, ("A", 2, 1.5), ("B", 1, 10.0))])).applied == [True]
    state = await store.get("c1")
    assert state is not None
    assert (state.frequency, state.monetary) == (1, 13.0)
    assert state.first_purchase == state.last_purchase == at(3)


async def test_redelivered_event_changes_nothing(store: Store) -> None:
    event = purchase("1", 3, ("A", 2, 1.5))
    await store.apply([event])
    again = await store.apply([event, event])
    assert again.applied == [False, False]
    assert rfm_of(await store.get("c1")) == (1, 3.0, at(3), at(3), "UK")


async def test_returns_matched_per_stock_code_in_any_order(store: Store) -> None:
    # Return before the purchase, and more returned than bought: 3 of 5 units match.
    await store.apply([ret("C1", 2, ("A", 5, 2.0))])
    await store.apply([purchase("1", 3, ("A", 3, 2.5), ("B", 1, 4.0))])
    state = await store.get("c1")
    assert state is not None
    assert state.frequency == 1
    assert state.monetary == pytest.approx(3 * 2.5 + 4.0 - 3 * 2.0)
    assert state.items["A"] == ItemTotals(bought=3, returned=5, returned_value=10.0)


async def test_a_large_invoice_matches_returns_on_every_line(store: Store) -> None:
    # The Redis script looks returned stock codes up in blocks: cross a block boundary.
    skus = [f"S{number:04d}" for number in range(2500)]
    await store.apply([ret("C1", 2, (skus[0], 1, 2.0), (skus[1200], 2, 3.0), (skus[2499], 1, 1.0))])
    await store.apply([purchase("1", 3, *((sku, 1, 4.0) for sku in skus))])
    state = await store.get("c1")
    assert state is not None
    # Matched: 1 of skus[0] at 2.0, 1 of 2 of skus[1200] at 3.0, 1 of skus[2499] at 1.0.
    assert state.monetary == pytest.approx(2500 * 4.0 - 2.0 - 3.0 - 1.0)
    assert state.items[skus[1200]] == ItemTotals(bought=1, returned=2, returned_value=6.0)


async def test_return_only_customer_has_no_rfm(store: Store) -> None:
    await store.apply([ret("C1", 2, ("A", 5, 2.0), customer="c9")])
    state = await store.get("c9")
    assert state is not None
    assert not state.has_rfm
    # Still a customer of the store: listed by scan and found by load.
    assert [s.customer_id async for batch in store.scan() for s in batch] == ["c9"]
    [loaded] = await store.load(["c9"])
    assert loaded is not None and loaded.frequency == 0


async def test_event_without_valid_line_is_recorded_but_not_counted(store: Store) -> None:
    await store.apply([OrderEffect("c1", "1", False, at(3), "UK", ())])
    state = await store.get("c1")
    assert state is not None
    assert state.frequency == 0 and "1" in state.orders


async def test_latest_purchase_sets_country_whatever_the_order(store: Store) -> None:
    await store.apply([purchase("2", 9, ("A", 1, 1.0), country="France")])
    await store.apply([purchase("1", 4, ("A", 1, 1.0), country="Spain")])
    assert rfm_of(await store.get("c1")) == (2, 2.0, at(4), at(9), "France")


async def test_any_order_and_duplicates_give_the_same_state(store: Store) -> None:
    rng = random.Random(7)
    events = []
    for number in range(60):
        customer = f"c{number % 4}"
        sku = rng.choice("ABCD")
        units = rng.randint(1, 9)
        price = rng.choice([0.85, 1.25, 2.1, 4.95])
        day = rng.randint(1, 28)
        if rng.random() < 0.3:
            events.append(ret(f"C{number}", day, (sku, units, price), customer=customer))
        else:
            events.append(purchase(f"{number}", day, (sku, units, price), customer=customer))
    reference = MemoryStore()
    await reference.apply(events)
    shuffled = events + events[:20]
    rng.shuffle(shuffled)
    await store.apply(shuffled)
    for number in range(4):
        mine, expected = await store.get(f"c{number}"), await reference.get(f"c{number}")
        assert expected is not None and mine is not None
        assert mine.orders == expected.orders
        assert mine.items.keys() == expected.items.keys()
        for sku, totals in expected.items.items():
            assert (mine.items[sku].bought, mine.items[sku].returned) == (
                totals.bought,
                totals.returned,
            )
            assert mine.items[sku].returned_value == pytest.approx(totals.returned_value)
        assert rfm_of(mine)[0] == rfm_of(expected)[0]
        assert mine.monetary == pytest.approx(expected.monetary, abs=1e-6)
        assert rfm_of(mine)[2:] == rfm_of(expected)[2:]


async def test_segments_are_compare_and_set(store: Store) -> None:
    await store.apply([purchase("1", 3, ("A", 2, 1.5))])
    first = SegmentUpdate("c1", "new", None, at(3), "v1", 1, '{"segment": "new"}')
    assert await store.record_each([first]) == [True]
    stale = SegmentUpdate("c1", "loyal", None, at(4), "v1", 2, '{"segment": "loyal"}')
    assert await store.record_each([stale]) == [False]
    state = await store.get("c1")
    assert state is not None
    assert (state.segment, state.sequence, state.model_version) == ("new", 1, "v1")
    assert await store.history("c1") == ['{"segment": "new"}']


async def test_segment_counts_follow_the_changes_recorded(store: Store) -> None:
    assert await store.segment_counts() == {}
    await store.apply(
        [purchase("1", 3, ("A", 1, 1.0)), purchase("2", 3, ("A", 1, 1.0), customer="c2")]
    )
    await store.record_each(
        [
            SegmentUpdate("c1", "new", None, at(3), "v1", 1, '{"n": 1}'),
            SegmentUpdate("c2", "new", None, at(3), "v1", 1, '{"n": 2}'),
        ]
    )
    assert await store.segment_counts() == {"new": 2}
    moved = SegmentUpdate("c1", "loyal", "new", at(4), "v1", 2, '{"n": 3}')
    assert await store.record_each([moved]) == [True]
    stale = SegmentUpdate("c2", "lost", None, at(4), "v1", 2, '{"n": 4}')
    assert await store.record_each([stale]) == [False]  # refused: counts nothing
    assert await store.record_each([moved]) == [True]  # a resend: counted once
    assert await store.segment_counts() == {"new": 1, "loyal": 1}


async def test_segment_counts_after_a_bulk_write_are_the_states_written(store: Store) -> None:
    await store.apply([purchase("1", 3, ("A", 1, 1.0))])
    await store.record_each([SegmentUpdate("c1", "new", None, at(3), "v1", 1, '{"n": 1}')])
    assert await store.segment_counts() == {"new": 1}
    states = [
        CustomerState(customer_id=f"b{number}", segment="loyal" if number % 2 else "lost")
        for number in range(5)
    ]
    await store.put(states)
    assert await store.segment_counts() == {"new": 1, "loyal": 2, "lost": 3}


async def test_scan_yields_every_customer(store: Store) -> None:
    await store.apply([purchase(str(n), 3, ("A", 1, 1.0), customer=f"k{n}") for n in range(25)])
    seen = [state.customer_id async for batch in store.scan(batch_size=7) for state in batch]
    assert sorted(seen) == sorted(f"k{n}" for n in range(25))


async def test_a_scan_goes_on_from_its_cursor_in_another_call(store: Store) -> None:
    await store.apply([purchase(str(n), 3, ("A", 1, 1.0), customer=f"k{n}") for n in range(40)])
    seen: list[str] = []
    cursor, pages = "0", 0
    while True:
        # One page per call, as when a worker dies after each batch and another goes on.
        cursor, page = await anext(aiter(store.scan_from(cursor, batch_size=9)))
        seen.extend(state.customer_id for state in page)
        pages += 1
        if cursor == "0":
            break
    assert pages > 1
    assert set(seen) == {f"k{n}" for n in range(40)}  # a customer may come twice, none is lost


async def test_a_scan_of_an_empty_store_ends_with_an_empty_page(store: Store) -> None:
    pages = [page async for page in store.scan_from("0")]
    assert pages and pages[-1][0] == "0" and all(not states for _, states in pages)


async def test_a_full_scan_from_the_start_ends_with_cursor_zero(store: Store) -> None:
    await store.apply([purchase(str(n), 3, ("A", 1, 1.0), customer=f"k{n}") for n in range(25)])
    pages = [page async for page in store.scan_from("0", batch_size=7)]
    assert pages[-1][0] == "0" and all(cursor != "0" for cursor, _ in pages[:-1])
    seen = {state.customer_id for _, page in pages for state in page}
    assert seen == {f"k{n}" for n in range(25)}


async def test_clock_only_moves_forward(store: Store) -> None:
    assert await store.clock() is None
    assert await store.advance_clock(100.0) == 100.0
    assert await store.advance_clock(50.0) == 100.0
    assert await store.clock() == 100.0


async def test_put_writes_whole_states(store: Store) -> None:
    source = MemoryStore()
    await source.apply([purchase("1", 3, ("A", 2, 1.5)), ret("C2", 4, ("A", 1, 1.5))])
    expected = await source.get("c1")
    assert expected is not None
    await store.put([expected])
    assert await store.get("c1") == expected
    assert (await store.apply([purchase("1", 3, ("A", 2, 1.5))])).applied == [False]


async def test_put_columns_writes_the_states_the_columns_hold(
    store: Store, make_frame: FrameBuilder
) -> None:
    frame = make_frame(
        [
            ("1", "85123A", "HEART", 6, "2011-01-10 10:00:00", 2.55, "c1", "UK"),
            ("1", "22423", "CAKESTAND", 1, "2011-01-10 10:00:00", 12.75, "c1", "UK"),
            ("C2", "85123A", "HEART", -2, "2011-01-11 10:00:00", 2.55, "c1", "UK"),
            ("3", "POST", "POSTAGE", 1, "2011-01-12 10:00:00", 18.0, "c2", "France"),
        ]
    )
    columns, _ = history_columns(frame)
    await store.put_columns(columns)
    for state in columns.states():
        assert await store.get(state.customer_id) == state
    # Its events are applied: delivered again, they change nothing.
    again = await store.apply([purchase("1", 3, ("85123A", 6, 15.3))])
    assert again.applied == [False]


async def test_returns_still_match_after_a_bulk_load(store: Store) -> None:
    # Bought 2, returned 3 (1 unmatched) before the load; buying 1 more matches one more.
    source = MemoryStore()
    await source.apply([purchase("1", 3, ("A", 2, 1.5)), ret("C2", 4, ("A", 3, 1.0))])
    loaded = await source.get("c1")
    assert loaded is not None
    await store.put([loaded])
    await store.apply([purchase("5", 9, ("A", 1, 1.5))])
    await source.apply([purchase("5", 9, ("A", 1, 1.5))])
    mine, expected = await store.get("c1"), await source.get("c1")
    assert mine is not None and expected is not None
    assert mine.monetary == pytest.approx(expected.monetary) == pytest.approx(4.5 - 3.0)


async def test_counters_add_up(store: Store) -> None:
    await store.add_counters({"events": 2, "dlq": 1})
    await store.add_counters({"events": 3})
    assert await store.counters() == {"events": 5, "dlq": 1}


async def test_due_customers_are_leased_then_rescheduled_or_forgotten(store: Store) -> None:
    await store.schedule({"a": 10.0, "b": 20.0, "c": 99.0})
    assert await store.pop_due(25.0, 10, lease_s=100.0) == ["a", "b"]
    assert await store.due_count(25.0) == 0  # leased until 125
    assert await store.pop_due(25.0, 10) == []
    await store.schedule({"a": 50.0})
    await store.unschedule(["b"])
    assert await store.due_count() == 2  # a (rescheduled) and c
    assert await store.pop_due(130.0, 10) == ["a", "c"]
