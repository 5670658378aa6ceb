"""The re-score after a model switch survives its worker: a cursor and a lease in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio as aioredis

from stream_app.service.ports import ChangeMessage, RescoreProgress
from stream_app.service.processor import BatchProcessor
from stream_app.service.rescoring import ModelRescore
from stream_app.store.coordination import Coordination
from stream_app.store.keys import Keys
from stream_app.store.memory import MemoryStore
from tests.fakes import FrequencyModel, MemoryPublisher, purchase_effect

NOW = datetime(2011, 12, 10, tzinfo=UTC).timestamp()
CUSTOMERS = 120


class Everyone:
    """The model served before the switch: everyone ``new``."""

    version = "v-old"

    def predict_segments(self, rfm: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
        return np.full(len(rfm), "new")


class Killed(BaseException):
    """The worker dies here (nothing after it runs, as with SIGKILL)."""


class DyingPublisher(MemoryPublisher):
    """Publishes ``batches`` batches of changes, then the worker dies on the next."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self.batches = batches

    async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
        if self.batches == 0:
            raise Killed
        self.batches -= 1
        await super().publish_changes(changes)


class Unreleasing:
    """The jobs as a killed worker leaves them: its lease is never given up, only lapses."""

    def __init__(self, jobs: Coordination) -> None:
        self.jobs = jobs

    async def take_rescore(
        self, version: str, token: str, lease_s: float
    ) -> RescoreProgress | None:
        return await self.jobs.take_rescore(version, token, lease_s)

    async def advance_rescore(
        self, version: str, token: str, cursor: str, customers: int, changed: int, lease_s: float
    ) -> bool:
        return await self.jobs.advance_rescore(version, token, cursor, customers, changed, lease_s)

    async def release_rescore(self, version: str, token: str) -> None:
        return None

    async def rescore_progress(self, version: str) -> RescoreProgress | None:
        return await self.jobs.rescore_progress(version)


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def store() -> MemoryStore:
    """Customers with two invoices each, scored ``new`` by the model served before."""
    memory = MemoryStore()
    await memory.apply(
        [
            purchase_effect(
                f"{n}-{order}", NOW - (10 + order) * 86_400, ("A", 1, 5.0), customer=f"c{n}"
            )
            for n in range(CUSTOMERS)
            for order in range(2)
        ]
    )
    await memory.advance_clock(NOW)
    before = BatchProcessor(memory, MemoryPublisher(), Everyone)  # type: ignore[arg-type]
    await before.rescore_all("retrain")
    return memory


async def switch_to(client: aioredis.Redis, keys: Keys, version: str) -> None:
    """Make ``version`` current with a fresh re-score job, as the registry's pointer move does."""
    await client.set(keys.model_current, version)
    await client.delete(keys.rescore_job(version))
    await client.hset(keys.rescore_job(version), mapping={"version": version, "cursor": "0"})


async def versions_served(store: MemoryStore) -> set[str | None]:
    return {state.model_version async for batch in store.scan() for state in batch}


async def test_one_worker_rescores_everyone_and_marks_the_job_done(
    store: MemoryStore, async_client: aioredis.Redis, keys: Keys
) -> None:
    await switch_to(async_client, keys, FrequencyModel.version)
    publisher = MemoryPublisher()
    processor = BatchProcessor(store, publisher, FrequencyModel)  # type: ignore[arg-type]
    jobs = Coordination(async_client, keys)
    rescore = ModelRescore(processor, jobs, batch_size=25)
    progress = await rescore.resume(FrequencyModel.version)
    assert progress is not None and progress.done
    assert (progress.customers, progress.changed, progress.leases) == (CUSTOMERS, CUSTOMERS, 1)
    assert await versions_served(store) == {FrequencyModel.version}
    assert {change.reason for change in publisher.changes} == {"retrain"}
    assert len(publisher.changes) == CUSTOMERS
    assert await rescore.resume(FrequencyModel.version) is None  # done: nothing to take


async def test_a_worker_killed_midway_is_taken_over_from_its_cursor(
    store: MemoryStore, async_client: aioredis.Redis, keys: Keys
) -> None:
    version = FrequencyModel.version
    await switch_to(async_client, keys, version)
    jobs = Coordination(async_client, keys)
    dying = BatchProcessor(store, DyingPublisher(batches=2), FrequencyModel)  # type: ignore[arg-type]
    first = ModelRescore(dying, Unreleasing(jobs), lease_s=0.5, batch_size=25)
    with pytest.raises(Killed):
        await first.resume(version)
    left = await jobs.rescore_progress(version)
    assert left is not None and not left.done
    assert left.cursor != "0" and left.customers == 50  # two batches stored

    publisher = MemoryPublisher()
    survivor = BatchProcessor(store, publisher, FrequencyModel)  # type: ignore[arg-type]
    second = ModelRescore(survivor, jobs, lease_s=0.5, batch_size=25)
    assert await second.resume(version) is None  # the dead worker's lease still runs
    await asyncio.sleep(0.6)
    progress = await second.resume(version)
    assert progress is not None and progress.done and progress.leases == 2
    assert await versions_served(store) == {version}
    # It went on from the cursor: the two stored batches were not re-scored again; the
    # batch the first worker died in was (its changes were recorded, not yet published).
    assert progress.customers == CUSTOMERS
    assert {change.customer_id for change in publisher.changes} == {
        f"c{n}" for n in range(50, CUSTOMERS)
    }


async def test_a_worker_that_stops_gives_its_lease_up(
    store: MemoryStore, async_client: aioredis.Redis, keys: Keys
) -> None:
    version = FrequencyModel.version
    await switch_to(async_client, keys, version)
    jobs = Coordination(async_client, keys)
    stopping = BatchProcessor(store, DyingPublisher(batches=1), FrequencyModel)  # type: ignore[arg-type]
    with pytest.raises(Killed):  # a stop that runs the worker's cleanup (SIGTERM)
        await ModelRescore(stopping, jobs, lease_s=60.0, batch_size=25).resume(version)
    processor = BatchProcessor(store, MemoryPublisher(), FrequencyModel)  # type: ignore[arg-type]
    progress = await ModelRescore(processor, jobs, lease_s=60.0, batch_size=25).resume(version)
    assert progress is not None and progress.done  # taken over at once, not after a minute


async def test_a_version_no_longer_current_stops_its_rescore(
    store: MemoryStore, async_client: aioredis.Redis, keys: Keys
) -> None:
    version = FrequencyModel.version
    await switch_to(async_client, keys, version)

    class PromotedMeanwhile(MemoryPublisher):
        async def publish_changes(self, changes: Sequence[ChangeMessage]) -> None:
            await super().publish_changes(changes)
            await switch_to(async_client, keys, "v-next")

    processor = BatchProcessor(store, PromotedMeanwhile(), FrequencyModel)  # type: ignore[arg-type]
    progress = await ModelRescore(
        processor, Coordination(async_client, keys), batch_size=25
    ).resume(version)
    assert progress is not None and not progress.done and progress.customers == 0


async def test_a_store_without_events_is_done_at_once(
    async_client: aioredis.Redis, keys: Keys
) -> None:
    await switch_to(async_client, keys, FrequencyModel.version)
    processor = BatchProcessor(MemoryStore(), MemoryPublisher(), FrequencyModel)  # type: ignore[arg-type]
    progress = await ModelRescore(processor, Coordination(async_client, keys)).resume(
        FrequencyModel.version
    )
    assert progress is not None and progress.done and progress.customers == 0
