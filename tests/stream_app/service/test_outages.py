"""outlast(): outages are waited out with back-off; other errors propagate at once."""

from __future__ import annotations

import pytest

from stream_app.exceptions import BrokerUnavailableError, StoreDataError, StoreUnavailableError
from stream_app.service.outages import outlast


async def test_outage_errors_are_retried_until_the_call_goes_through() -> None:
    failures: list[Exception] = [StoreUnavailableError("down"), BrokerUnavailableError("gone")]
    calls: list[tuple[int, str]] = []

    async def call(number: int, word: str) -> str:
        calls.append((number, word))
        if failures:
            raise failures.pop(0)
        return f"{word}{number}"

    assert await outlast(call, 7, "x", what="a test", first_delay_s=0.001) == "x7"
    assert calls == [(7, "x")] * 3


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise StoreDataError("WRONGTYPE")

    with pytest.raises(StoreDataError):
        await outlast(call, what="a test", first_delay_s=0.001)
    assert calls == 1
