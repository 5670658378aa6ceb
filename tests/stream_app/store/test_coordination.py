"""Coordination between workers and ``rfm`` commands, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from stream_app.store.coordination import RESCORE_CLAIM_TTL_S, Coordination
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


async def test_retrain_request_is_taken_once(coordination: Coordination) -> None:
    assert await coordination.take_retrain_request() is False
    await coordination.request_retrain()
    await coordination.request_retrain()
    assert await coordination.take_retrain_request() is True
    assert await coordination.take_retrain_request() is False


async def test_one_of_many_takes_the_request(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    client.set(keys.retrain_requested, "1")  # as `rfm retrain` of the previous code wrote it
    taken = await asyncio.gather(*(coordination.take_retrain_request() for _ in range(8)))
    assert taken.count(True) == 1


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


async def test_the_rescore_claim_is_taken_once_per_version(
    coordination: Coordination, client: redis.Redis, keys: Keys
) -> None:
    claims = await asyncio.gather(*(coordination.claim_rescore(V1, "app") for _ in range(4)))
    assert claims.count(True) == 1
    assert await coordination.claim_rescore(V1, "app") is False
    assert await coordination.claim_rescore(V2, "app") is True  # a new version: a new claim
    assert client.get(keys.rescore_claim(V1)) == "app"
    assert RESCORE_CLAIM_TTL_S - 5 <= client.ttl(keys.rescore_claim(V1)) <= RESCORE_CLAIM_TTL_S


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
