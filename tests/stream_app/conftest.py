"""Fixtures for the stream's tests: a private Redis server on a free port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from stream_app.devtools.cluster import start_cluster
from stream_app.devtools.processes import terminate
from stream_app.devtools.servers import find_redis_server, redis_url, start_redis
from stream_app.exceptions import StackError
from stream_app.store.client import cluster_client, redis_client
from stream_app.store.keys import Keys
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore


@pytest.fixture(scope="session")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the tests' own, on a free port, stopped at the end."""
    try:
        find_redis_server()
    except StackError as exc:
        pytest.skip(str(exc))
    directory: Path = tmp_path_factory.mktemp("redis")
    # Started like the local stack's Redis (no snapshots, no AOF); it also dies with pytest.
    server = start_redis(directory, die_with_parent=True, timeout=10)
    try:
        yield redis_url(server.port)
    finally:
        terminate([server], timeout=10)


@pytest.fixture(scope="session")
def private_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of the tests' own (3 masters, no replicas), stopped at the end."""
    try:
        find_redis_server()
    except StackError as exc:
        pytest.skip(str(exc))
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"), 3, die_with_parent=True)
    try:
        yield redis_url(nodes[0].port)
    finally:
        terminate(nodes, timeout=10)


@pytest.fixture
def client(private_redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client of the tests' own Redis (strings in, strings out)."""
    connection = redis.Redis.from_url(private_redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
async def async_client(private_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An async client of the tests' own Redis, made as the service makes its clients."""
    connection = redis_client(private_redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[MemoryStore | RedisStore]:
    """Each customer-state store, so one contract suite runs against all: in memory, on one
    Redis and on a Redis Cluster."""
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = f"t{uuid.uuid4().hex[:8]}"
    if request.param == "cluster":
        url: str = request.getfixturevalue("private_cluster_url")
        async with RedisStore(cluster_client(url), Keys(prefix)) as cluster_store:
            yield cluster_store
        return
    url = request.getfixturevalue("private_redis_url")
    async with RedisStore.from_url(url, prefix=prefix) as redis_store:
        yield redis_store


@pytest.fixture
def keys() -> Keys:
    return Keys("rfm")
