"""Input the stream can trust: a bad event becomes a dead letter and changes nothing else.

Each case runs the good events with and without the bad one, through the batch processor and
each store (Redis and in-memory), and compares the customers' states and the clock.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.effects import order_effect
from stream_app.core.events import parse_order_event
from stream_app.core.limits import Limits
from stream_app.core.state import CustomerState
from stream_app.service.ports import CustomerStore, RawMessage
from stream_app.service.processor import BatchProcessor
from stream_app.settings import Clock
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore
from tests.fakes import FrequencyModel, MemoryPublisher, messages, order_event

#: The wall clock of these tests: the data's dates are in the past, 2099 is not.
WALL = datetime(2012, 1, 1, tzinfo=UTC).timestamp()


def when(day: int, hour: int = 10) -> datetime:
    return datetime(2011, 6, day, hour, tzinfo=UTC)


def line(sku: str = "85123A", quantity: Any = 2, unit_price: Any = 5.0) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": unit_price}


def order(
    event_id: str,
    customer: str = "c1",
    day: int = 1,
    *lines: dict[str, Any],
    kind: str = "purchase",
    at: datetime | None = None,
) -> bytes:
    return order_event(
        event_id, customer, at or when(day), kind=kind, lines=list(lines) or [line()]
    )


GOOD = [
    order("1", "c1", 1, line("10A", 3, 2.0), line("20B", 1, 10.0)),
    order("2", "c2", 2, line("10A", 1, 4.0)),
    order("C3", "c1", 3, line("10A", 1, 2.0), kind="return"),
    order("4", "c1", 5, line("20B", 2, 10.0)),
]

#: Well-formed events that no believable shop sends, or that cannot be applied.
BAD = {
    "quantity 10^17": order("9", "c1", 4, line("10A", 10**17, 1.0)),
    "quantity 10^12": order("9", "c1", 4, line("10A", 10**12, 1.0)),
    "price 1e300": order("9", "c1", 4, line("10A", 1, 1e300)),
    "infinite total": order("9", "c1", 4, *[line("10A", 10, 1e308)] * 10),
    "infinite return": order("C9", "c1", 4, line("10A", 10, 1e308), kind="return"),
    "dated 2099": order("9", "c1", at=datetime(2099, 6, 1, tzinfo=UTC)),
    "dated 2030 on another customer": order("9", "c3", at=datetime(2030, 1, 1, tzinfo=UTC)),
    "conflicting redelivery": order("1", "c1", 1, line("10A", 300, 2.0)),
    "clock event in 2099": json.dumps(
        {"kind": "clock", "occurred_at": "2099-06-01T00:00:00+00:00"}
    ).encode(),
}


DEFAULT = Limits()


def processor(store: CustomerStore, limits: Limits = DEFAULT) -> BatchProcessor:
    return BatchProcessor(
        store, MemoryPublisher(), lambda: FrequencyModel(), Clock.EVENT, limits=limits,
        wall_clock=lambda: WALL,
    )  # fmt: skip


async def snapshot(store: CustomerStore, customers: list[str]) -> dict[str, Any]:
    states: dict[str, CustomerState | None] = {c: await store.get(c) for c in customers}
    # Floats summed in another order may differ in the last bit.
    return {
        "states": {
            c: None
            if s is None
            else replace(s, spent=round(s.spent, 6), returned_matched=round(s.returned_matched, 6))
            for c, s in states.items()
        },
        "clock": await store.clock(),
    }


def rfm_part(state: CustomerState | None) -> tuple[Any, ...] | None:
    """What the orders made of a customer (not when or how often they were scored)."""
    if state is None:
        return None
    return (
        state.frequency, round(state.spent, 6), round(state.returned_matched, 6),
        state.first_purchase, state.last_purchase, state.last_order, state.country,
        state.items, state.orders, state.digests,
    )  # fmt: skip


async def rfm_parts(store: CustomerStore, customers: list[str]) -> dict[str, Any]:
    return {customer: rfm_part(await store.get(customer)) for customer in customers}


async def fresh(store: CustomerStore) -> CustomerStore:
    """An empty store of the same kind (a Redis one under another key prefix)."""
    if isinstance(store, RedisStore):
        return RedisStore(store.client, type(store.keys)(store.keys.prefix + "-good"))
    return MemoryStore()


def publisher_of(work: BatchProcessor) -> MemoryPublisher:
    assert isinstance(work.publisher, MemoryPublisher)
    return work.publisher


@pytest.mark.parametrize("case", sorted(BAD))
async def test_a_bad_event_is_a_dead_letter_and_changes_nothing(
    store: CustomerStore, case: str
) -> None:
    bad = BAD[case]
    work = processor(store)
    await work.handle(messages(*GOOD[:2]))
    outcome = await work.handle(messages(*GOOD[2:3], bad, *GOOD[3:], first_offset=2))
    assert outcome.dead_letters == 1
    [letter] = publisher_of(work).letters
    assert (letter.topic, letter.offset) == ("orders", 3)
    assert letter.payload == bad.decode()

    alone = processor(await fresh(store))
    await alone.handle(messages(*GOOD[:2]))
    await alone.handle(messages(*GOOD[2:], first_offset=2))
    customers = ["c1", "c2", "c3"]
    assert await snapshot(work.store, customers) == await snapshot(alone.store, customers)
    assert outcome.applied == 2


async def test_reasons_name_the_bound_or_the_conflict(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(messages(*GOOD))
    await work.handle(messages(BAD["quantity 10^17"], BAD["dated 2099"], BAD["price 1e300"]))
    await work.handle(messages(BAD["conflicting redelivery"], GOOD[0]))
    reasons = [letter.reason for letter in publisher_of(work).letters]
    assert reasons[0].startswith("lines.0.quantity: 100000000000000000 is above")
    assert reasons[1].startswith("occurred_at 2099-06-01T00:00:00+00:00 is more than 86400 s")
    assert reasons[2].startswith("lines.0.unit_price: 1e+300 is above")
    stored = order_effect(parse_order_event(GOOD[0])).digest
    other = order_effect(parse_order_event(BAD["conflicting redelivery"])).digest
    assert reasons[3] == (
        f"conflict: event 1 was applied with content digest {stored}; this one has {other}"
    )
    # The identical redelivery after it is a plain duplicate.
    assert len(reasons) == 4
    counters = await work.store.counters()
    assert (counters["conflicts"], counters["duplicates"], counters["dead_letters"]) == (1, 1, 4)


async def test_infinite_values_are_refused_even_with_unbounded_limits(store: CustomerStore) -> None:
    unbounded = Limits(max_unit_price=float("inf"), max_order_value=float("inf"))
    work = processor(store, unbounded)
    await work.handle(messages(BAD["infinite total"], BAD["infinite return"], *GOOD))
    reasons = [letter.reason for letter in publisher_of(work).letters]
    assert reasons == ["order value inf is not finite"] * 2
    assert (await work.store.get("c1")) is not None


# ------------------------------------------------------------------ the clock


def on(partition: int, *values: bytes, first_offset: int = 0) -> list[RawMessage]:
    return messages(*values, first_offset=first_offset, partition=partition)


async def test_the_clock_is_the_slowest_partition(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(on(0, order("1", "c1", 1)))
    assert await store.clock() == when(1).timestamp()
    # A partition ahead does not move the clock past the one behind.
    await work.handle(on(1, order("2", "c2", 20)))
    assert await store.clock() == when(1).timestamp()
    await work.handle(on(0, order("3", "c1", 10)))
    assert await store.clock() == when(10).timestamp()
    # An order on a lagging partition is old news: the clock never moves back.
    await work.handle(on(2, order("4", "c3", 2)))
    assert await store.clock() == when(10).timestamp()
    await work.handle(on(0, order("5", "c1", 25), first_offset=1))
    await work.handle(on(2, order("6", "c3", 22), first_offset=1))
    assert await store.clock() == when(20).timestamp()
    # The order on partition 1 is scored as of its day, not later: recency 0, never negative.
    c2 = await store.get("c2")
    assert c2 is not None and c2.recency_days(when(10).timestamp()) == 0


async def test_future_orders_on_several_partitions_move_nothing(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(on(0, order("1", "c1", 1)) + on(1, order("2", "c2", 2)))
    before = await store.clock()
    for partition, year in ((0, 2030), (1, 2099), (2, 2099)):
        future = order(f"f{partition}", "c9", at=datetime(year, 1, 1, tzinfo=UTC))
        await work.handle(on(partition, future, first_offset=5))
    assert await store.clock() == before
    assert await store.get("c9") is None
    assert len(publisher_of(work).letters) == 3


async def test_a_clock_event_moves_every_partition(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(on(0, order("1", "c1", 1)) + on(1, order("2", "c2", 2)))
    tick = json.dumps({"kind": "clock", "occurred_at": when(28).isoformat()}).encode()
    await work.handle(on(0, tick, first_offset=3))
    assert await store.clock() == when(28).timestamp()
    # Each partition starts from there: an older order moves nothing.
    await work.handle(on(1, order("3", "c2", 3), first_offset=4))
    assert await store.clock() == when(28).timestamp()


async def test_set_clock_repairs_a_clock_moved_too_far(store: CustomerStore) -> None:
    work = processor(store)
    await work.handle(on(0, order("1", "c1", 1)) + on(1, order("2", "c2", 2)))
    await store.advance_clock(datetime(2011, 12, 31, tzinfo=UTC).timestamp())
    assert await store.set_clock(when(3).timestamp()) == when(3).timestamp()
    assert await store.clock() == when(3).timestamp()
    # The partitions continue from where they really are.
    await work.handle(on(0, order("3", "c1", 6), first_offset=2))
    await work.handle(on(1, order("4", "c2", 5), first_offset=2))
    assert await store.clock() == when(5).timestamp()


# ------------------------------------------------------------------ the store's own checks


async def test_the_script_refuses_values_it_cannot_apply_before_writing(
    private_redis_url: str,
) -> None:
    from tests.fakes import purchase_effect

    async with RedisStore.from_url(private_redis_url, prefix="trust-lua") as store:
        good = purchase_effect("1", when(1).timestamp(), ("10A", 1, 2.0))
        huge = purchase_effect("2", when(2).timestamp(), ("10A", 10**17, 1.0))
        endless = replace(
            purchase_effect("3", when(3).timestamp(), ("10A", 1, 1.0)), values=(float("inf"),)
        )
        result = await store.apply([good, huge, endless])
        assert result.applied == [True, False, False]
        assert result.rejected == {1: "quantity", 2: "total"}
        state = await store.get("c1")
        assert state is not None
        assert (state.frequency, state.orders, state.items["10A"].bought) == (1, {"1"}, 1)


async def test_a_store_refusal_dead_letters_only_its_event(private_redis_url: str) -> None:
    async with RedisStore.from_url(private_redis_url, prefix="trust-refused") as store:
        # A key of the wrong type (a hand edit): Redis refuses that customer's script.
        await store.client.set(store.keys.items("c2"), "not a hash")
        work = processor(store)
        outcome = await work.handle(messages(*GOOD))
        [letter] = publisher_of(work).letters
        assert letter.reason.startswith("the store refused the event: Redis call failed")
        assert "WRONGTYPE" in letter.reason
        # The batch's call applied the events before the refused one; one by one, those read
        # as duplicates.
        assert (outcome.applied + outcome.duplicates, outcome.dead_letters) == (3, 1)
        c1 = await store.get("c1")
        assert c1 is not None and c1.frequency == 2
        assert await store.clock() == when(5).timestamp()


# ------------------------------------------------------------------ property


SKUS = ["10A", "20B", "30C", "POST", "C2"]


def _stream(seed: int, customers: int = 4, good: int = 30) -> tuple[list[bytes], list[bytes]]:
    """Good events and the same stream with bad ones mixed in (both in delivery order)."""
    rng = random.Random(seed)
    events = []
    for number in range(good):
        customer = f"c{rng.randrange(customers)}"
        lines = [
            line(rng.choice(SKUS), rng.randint(1, 9), rng.choice([0.0, 1.5, 7.25]))
            for _ in range(rng.randint(1, 4))
        ]
        kind = "return" if rng.random() < 0.2 else "purchase"
        events.append(order(f"{'C' if kind == 'return' else ''}{number}", customer,
                            rng.randint(1, 28), *lines, kind=kind))  # fmt: skip
    mixed = list(events)
    harmful = [value for name, value in BAD.items() if name != "conflicting redelivery"]
    for _ in range(rng.randint(1, 10)):
        position = rng.randrange(len(mixed) + 1)
        choice = rng.random()
        if choice < 0.3:
            # A redelivery of an event already delivered, with other lines.
            original = rng.choice(events)
            position = rng.randint(mixed.index(original) + 1, len(mixed))
            changed = json.loads(original)
            changed["lines"] = [line("10A", rng.randint(10, 99), 3.0)]
            bad = json.dumps(changed).encode()
        elif choice < 0.5:
            bad = rng.choice(harmful)
        elif choice < 0.7:
            bad = order(
                "x", f"c{rng.randrange(customers)}", 3, line("10A", 10 ** rng.randint(7, 30))
            )
        elif choice < 0.85:
            bad = b'{"event_id": "broken", ' + b"x" * rng.randint(0, 50)
        else:
            bad = rng.choice(events)  # an identical redelivery: harmless
        mixed.insert(position, bad)
    return events, mixed


async def _run(store: CustomerStore, stream: list[bytes], sizes: list[int]) -> None:
    work = processor(store)
    position = 0
    for size in sizes:
        chunk = stream[position : position + size]
        if chunk:
            await work.handle(messages(*chunk, first_offset=position, partition=size % 3))
        position += size
    if position < len(stream):
        await work.handle(messages(*stream[position:], first_offset=position))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), sizes=st.lists(st.integers(1, 12), max_size=8))
def test_bad_events_mixed_in_leave_the_state_of_the_good_ones(seed: int, sizes: list[int]) -> None:
    good, mixed = _stream(seed)

    async def compare() -> None:
        with_bad, alone = MemoryStore(), MemoryStore()
        await _run(with_bad, mixed, sizes)
        await _run(alone, good, [len(good)])
        customers = [f"c{n}" for n in range(4)]
        assert await rfm_parts(with_bad, customers) == await rfm_parts(alone, customers)

    asyncio.run(compare())


@pytest.mark.parametrize("seed", range(5))
async def test_bad_events_mixed_in_on_redis(private_redis_url: str, seed: int) -> None:
    good, mixed = _stream(seed)
    rng = random.Random(seed)
    sizes = [rng.randint(1, 12) for _ in range(10)]
    async with (
        RedisStore.from_url(private_redis_url, prefix=f"trust-mixed-{seed}") as with_bad,
        RedisStore.from_url(private_redis_url, prefix=f"trust-good-{seed}") as alone,
    ):
        await _run(with_bad, mixed, sizes)
        await _run(alone, good, [len(good)])
        customers = [f"c{n}" for n in range(4)]
        assert await rfm_parts(with_bad, customers) == await rfm_parts(alone, customers)
