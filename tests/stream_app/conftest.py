"""Fixtures for the stream's tests: a private Redis server on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from stream_app.store.client import redis_client
from stream_app.store.keys import Keys
from stream_app.store.memory import MemoryStore
from stream_app.store.redis_store import RedisStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the tests' own, on a free port, stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    directory: Path = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


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


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[MemoryStore | RedisStore]:
    """Each customer-state store, so one contract suite runs against both."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url: str = request.getfixturevalue("private_redis_url")
    async with RedisStore.from_url(url, prefix=f"t{uuid.uuid4().hex[:8]}") as redis_store:
        yield redis_store


@pytest.fixture
def keys() -> Keys:
    return Keys("rfm")
