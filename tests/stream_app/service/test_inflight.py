"""Batches worked on in the background: in order, acknowledged only when done."""

from __future__ import annotations

import asyncio

import pytest

from stream_app.service.inflight import InOrder


async def test_work_overlaps_the_next_submit_but_finishes_in_order() -> None:
    log: list[str] = []
    gate = asyncio.Event()

    async def work(batch: str) -> None:
        log.append(f"start {batch}")
        if batch == "a":
            await gate.wait()
        log.append(f"end {batch}")

    batches: InOrder[str] = InOrder(work, depth=1)
    await batches.submit("a", lambda: log.append("done a"))
    await asyncio.sleep(0)
    # "a" is still being worked on; "b" is accepted (the consumer goes on reading).
    await batches.submit("b", lambda: log.append("done b"))
    assert log == ["start a"]
    gate.set()
    await batches.join()
    assert log == ["start a", "end a", "done a", "start b", "end b", "done b"]


async def test_submit_waits_while_the_queue_is_full() -> None:
    gate = asyncio.Event()

    async def work(batch: int) -> None:
        await gate.wait()

    batches: InOrder[int] = InOrder(work, depth=1)
    await batches.submit(1, lambda: None)
    await asyncio.sleep(0)
    await batches.submit(2, lambda: None)
    third = asyncio.create_task(batches.submit(3, lambda: None))
    await asyncio.sleep(0.01)
    assert not third.done()  # back-pressure: the consumer stops reading
    gate.set()
    await third
    await batches.join()


async def test_a_failed_batch_and_every_later_one_stay_unacknowledged() -> None:
    done: list[int] = []
    errors: list[BaseException] = []

    async def work(batch: int) -> None:
        if batch == 2:
            raise ValueError("boom")

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    batches: InOrder[int] = InOrder(work, depth=2, on_error=on_error)
    for batch in (1, 2, 3):
        await batches.submit(batch, lambda batch=batch: done.append(batch))
    with pytest.raises(RuntimeError, match="earlier batch failed"):
        await batches.join()
    assert done == [1]
    assert [str(exc) for exc in errors] == ["boom"]
    with pytest.raises(RuntimeError):
        await batches.submit(4, lambda: done.append(4))
    assert done == [1]
