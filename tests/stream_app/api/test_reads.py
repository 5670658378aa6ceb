"""The API's reads against the in-memory store: statistics, empty segments, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream_app.api.problems import ApiProblem
from stream_app.api.reads import ProfileReader, decode_cursor, encode_cursor
from stream_app.service.ports import SegmentUpdate
from stream_app.store.memory import MemoryStore
from tests.fakes import purchase_effect

NOW = datetime(2011, 6, 30, tzinfo=UTC).timestamp()


async def reader_of(store: MemoryStore) -> ProfileReader:
    async def now() -> float | None:
        return NOW

    async def version() -> str | None:
        return "v1"

    async def names() -> list[str]:
        return ["champions", "lost", "new"]

    return ProfileReader(store, now, version, names)


async def test_statistics_list_the_model_segments_nobody_is_in() -> None:
    store = MemoryStore()
    spends = {"a": 10.0, "b": 30.0, "c": 60.0}
    await store.apply(
        [
            purchase_effect(f"e{c}", NOW - 86_400 * (i + 1), ("A", 1, spend), customer=c)
            for i, (c, spend) in enumerate(spends.items())
        ]
    )
    await store.record_each(
        [
            SegmentUpdate(c, "new" if c != "c" else "champions", None, NOW, "v1", 1, f'"{c}"')
            for c in spends
        ]
    )
    body = await (await reader_of(store)).segments()
    assert [(s.name, s.customers) for s in body.segments] == [
        ("champions", 1),
        ("new", 2),
        ("lost", 0),
    ]
    new = body.segments[1]
    assert new.revenue_share == pytest.approx(0.4)
    assert (new.recency_days.mean, new.recency_days.median) == (1.5, 1.5)
    lost = body.segments[2]
    assert (lost.revenue_share, lost.monetary.mean, lost.label) == (0.0, None, "Lost")


def test_cursors_round_trip_any_id() -> None:
    for customer in ("12345", "ü/ß?&=", ""):
        assert decode_cursor(encode_cursor(customer)) == customer
    with pytest.raises(ApiProblem):
        decode_cursor("not a cursor!")
