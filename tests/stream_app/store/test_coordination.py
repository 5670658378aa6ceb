"""Coordination between workers and ``rfm`` commands, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from stream_app.store.coordination import RESCORE_DONE_TTL_S, RESCORE_JOB_TTL_S, Coordination
from stream_app.store.keys import Keys
from tests.fakes import V1, V2, V3


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def coordination(async_client: aioredis.Redis, keys: Keys) -> Coordination:
    return Coordination(async_client, keys)


async def test_the_retrain_lock_is_exclusive(coordination: Coordination) -> None:
    assert await coordination.take_retrain_lock("one", 60.0) is True
    assert await coordination.take_retrain_lock("two", 60.0) is False
    assert await coordination.take_retrain_lock("one", 60.0) is True  # its holder holds it
    assert await coordination.release_retrain_lock("one") is True
    assert await coordination.take_retrain_lock("two", 60.0) is True


async def test_only_the_holder_releases_the_lock(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    assert await coordination.take_retrain_lock("holder", 60.0) is True
    assert await coordination.release_retrain_lock("another") is False
    assert client.get(keys.retrain_lock) == "holder"
    assert await coordination.release_retrain_lock("holder") is True
    assert client.get(keys.retrain_lock) is None
    assert await coordination.release_retrain_lock("holder") is False  # nothing left to release


async def test_the_lock_expires(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    assert await coordination.take_retrain_lock("dies", 0.2) is True
    assert 0 < client.pttl(keys.retrain_lock) <= 200
    await asyncio.sleep(0.3)
    # The holder died: another worker takes the lock, and the late holder cannot free it.
    assert await coordination.take_retrain_lock("next", 60.0) is True
    assert await coordination.release_retrain_lock("dies") is False
    assert client.get(keys.retrain_lock) == "next"


async def test_a_lock_written_by_the_previous_code_is_respected(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    client.set(keys.retrain_lock, "another worker")  # no expiry, any value
    assert await coordination.take_retrain_lock("mine", 60.0) is False
    assert await coordination.release_retrain_lock("mine") is False
    assert client.get(keys.retrain_lock) == "another worker"


async def test_the_lock_is_renewed_by_its_holder_only(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    assert await coordination.take_retrain_lock("holder", 1.0) is True
    assert await coordination.renew_retrain_lock("holder", 60.0) is True
    assert client.pttl(keys.retrain_lock) > 55_000
    assert await coordination.renew_retrain_lock("other", 1.0) is False
    assert client.pttl(keys.retrain_lock) > 55_000
    await coordination.release_retrain_lock("holder")
    assert await coordination.renew_retrain_lock("holder", 60.0) is False  # lost: not retaken
    assert client.get(keys.retrain_lock) is None


async def test_a_retrain_request_stays_until_it_is_cleared(coordination: Coordination) -> None:
    assert await coordination.retrain_request() is None
    request = await coordination.request_retrain()
    assert await coordination.retrain_request() == request  # reading leaves it pending
    assert await coordination.retrain_request() == request
    assert await coordination.clear_retrain_request(request) is True
    assert await coordination.retrain_request() is None
    assert await coordination.clear_retrain_request(request) is False  # a resend: nothing


async def test_a_request_made_during_an_attempt_outlives_it(coordination: Coordination) -> None:
    first = await coordination.request_retrain()
    second = await coordination.request_retrain()  # `rfm retrain` again while a worker fits
    assert second != first
    assert await coordination.clear_retrain_request(first) is False
    assert await coordination.retrain_request() == second


async def test_a_request_written_by_the_previous_code_is_read(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    client.set(keys.retrain_requested, "1")  # as `rfm retrain` of the previous code wrote it
    assert await coordination.retrain_request() == "1"
    assert await coordination.clear_retrain_request("1") is True


async def test_last_attempt_round_trip(coordination: Coordination) -> None:
    assert await coordination.last_attempt() == {}
    await coordination.record_attempt(
        {"accepted": False, "reasons": ["silhouette 0.100 is below 0.150"], "version": V2}
    )
    last = await coordination.last_attempt()
    assert last["accepted"] is False
    assert last["reasons"] == ["silhouette 0.100 is below 0.150"]
    assert last["version"] == V2
    assert isinstance(last["time"], str)
    await coordination.record_attempt(
        {"time": "2024-03-01T00:00:00+00:00", "accepted": True, "version": V3}
    )
    assert await coordination.last_attempt() == {
        "time": "2024-03-01T00:00:00+00:00",
        "accepted": True,
        "version": V3,
    }


async def test_last_attempt_reads_what_was_written_before(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    # Each field JSON-encoded, as the registry of the previous code wrote it; one by hand.
    client.hset(
        keys.retrain_last,
        mapping={"time": '"2024-03-01T00:00:00+00:00"', "accepted": "true", "note": "by hand"},
    )
    assert await coordination.last_attempt() == {
        "time": "2024-03-01T00:00:00+00:00",
        "accepted": True,
        "note": "by hand",
    }


def open_job(client: redis.Redis, keys: Keys, version: str) -> None:
    """Make ``version`` current with a fresh re-score job, as the registry's pointer move does."""
    client.set(keys.model_current, version)
    client.delete(keys.rescore_job(version))
    client.hset(keys.rescore_job(version), mapping={"version": version, "cursor": "0"})


async def test_one_worker_at_a_time_holds_a_rescore_job(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    open_job(client, keys, V1)
    taken = await asyncio.gather(*(coordination.take_rescore(V1, f"w{n}", 60.0) for n in range(4)))
    holders = [job for job in taken if job is not None]
    assert len(holders) == 1 and holders[0].cursor == "0" and holders[0].leases == 1
    holder = f"w{taken.index(holders[0])}"
    again = await coordination.take_rescore(V1, holder, 60.0)  # its holder holds it
    assert again is not None and again.leases == 1


async def test_a_rescore_job_goes_on_from_its_cursor_after_the_lease_lapses(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    open_job(client, keys, V1)
    assert await coordination.take_rescore(V1, "dies", 0.3) is not None
    assert await coordination.advance_rescore(V1, "dies", "1234", 40, 3, 0.3) is True
    assert await coordination.take_rescore(V1, "next", 60.0) is None  # renewed: still held
    await asyncio.sleep(0.4)
    job = await coordination.take_rescore(V1, "next", 60.0)
    assert job is not None
    assert (job.cursor, job.customers, job.changed, job.leases) == ("1234", 40, 3, 2)
    # The first holder, come back, has lost it and stops.
    assert await coordination.advance_rescore(V1, "dies", "5678", 40, 1, 60.0) is False
    assert await coordination.advance_rescore(V1, "next", "0", 60, 2, 60.0) is True
    progress = await coordination.rescore_progress(V1)
    assert progress is not None and progress.done and progress.customers == 100
    assert progress.changed == 5
    assert await coordination.take_rescore(V1, "late", 60.0) is None  # done: nobody takes it
    assert RESCORE_DONE_TTL_S - 5 <= client.ttl(keys.rescore_job(V1)) <= RESCORE_DONE_TTL_S
    # Finishing again (a resend after a lost reply) reads as done.
    assert await coordination.advance_rescore(V1, "next", "0", 60, 2, 60.0) is True


async def test_progress_renews_the_job_and_its_lease(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    open_job(client, keys, V1)
    assert await coordination.take_rescore(V1, "w", 0.2) is not None
    assert await coordination.advance_rescore(V1, "w", "77", 10, 0, 60.0) is True
    await asyncio.sleep(0.3)
    assert await coordination.take_rescore(V1, "other", 60.0) is None  # the lease was renewed
    assert RESCORE_JOB_TTL_S - 5 <= client.ttl(keys.rescore_job(V1)) <= RESCORE_JOB_TTL_S


async def test_a_released_rescore_job_is_taken_at_once(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    open_job(client, keys, V1)
    assert await coordination.take_rescore(V1, "stops", 60.0) is not None
    assert await coordination.advance_rescore(V1, "stops", "9", 5, 0, 60.0) is True
    await coordination.release_rescore(V1, "other")  # not the holder: nothing
    assert await coordination.take_rescore(V1, "next", 60.0) is None
    await coordination.release_rescore(V1, "stops")
    job = await coordination.take_rescore(V1, "next", 60.0)
    assert job is not None and job.cursor == "9"


async def test_only_the_current_version_is_rescored(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    assert await coordination.take_rescore(V1, "w", 60.0) is None  # no job opened
    open_job(client, keys, V1)
    assert await coordination.take_rescore(V1, "w", 60.0) is not None
    open_job(client, keys, V2)  # promoted meanwhile
    assert await coordination.advance_rescore(V1, "w", "3", 1, 0, 60.0) is False
    assert await coordination.take_rescore(V1, "w", 60.0) is None
    assert await coordination.take_rescore(V2, "w", 60.0) is not None


async def test_a_version_claimed_by_the_previous_code_counts_as_done(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    open_job(client, keys, V1)
    client.set(keys.rescore_claim(V1), "rfm-segments")  # an older worker re-scored it
    assert await coordination.take_rescore(V1, "w", 60.0) is None
    progress = await coordination.rescore_progress(V1)
    assert progress is not None and progress.done
    assert await coordination.rescore_progress(V2) is None


async def test_the_heartbeat_says_which_version_a_worker_serves(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    before = time.time()
    await coordination.heartbeat("host-1", V1)
    await coordination.heartbeat("host-2", None)
    raw = client.hgetall(keys.workers)
    assert set(raw) == {"host-1", "host-2"}
    beat = json.loads(raw["host-1"])
    assert beat["version"] == V1 and before <= beat["at"] <= time.time()
    assert json.loads(raw["host-2"])["version"] is None

    await coordination.heartbeat("host-1", V2)
    workers = await coordination.workers()
    assert workers["host-1"]["version"] == V2
    assert workers["host-2"] == json.loads(raw["host-2"])
