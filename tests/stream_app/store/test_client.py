"""The one Redis client factory: what each client gets; a command outlives a lost connection."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ConnectionError, TimeoutError

from stream_app.exceptions import StoreUnavailableError
from stream_app.store.client import (
    CONNECT_TIMEOUT_S,
    HEALTH_CHECK_INTERVAL_S,
    RETRIES,
    SOCKET_TIMEOUT_S,
    redis_client,
    redis_errors,
)
from stream_app.store.redis_store import RedisStore


async def test_clients_decode_time_out_and_retry() -> None:
    client = redis_client("redis://127.0.0.1:6379/0")
    try:
        options = client.get_connection_kwargs()
        assert options["decode_responses"] is True
        assert options["socket_timeout"] == SOCKET_TIMEOUT_S
        assert options["socket_connect_timeout"] == CONNECT_TIMEOUT_S
        assert options["health_check_interval"] == HEALTH_CHECK_INTERVAL_S
        retry = options["retry"]
        assert retry.get_retries() == RETRIES
        assert {ConnectionError, TimeoutError} <= set(retry._supported_errors)
    finally:
        await client.aclose()


async def test_the_store_gets_its_client_from_the_factory(private_redis_url: str) -> None:
    async with RedisStore.from_url(private_redis_url) as store:
        options = store.client.get_connection_kwargs()
        assert options["retry"].get_retries() == RETRIES
        assert options["socket_timeout"] == SOCKET_TIMEOUT_S


async def test_a_command_survives_a_dropped_connection(
    private_redis_url: str, client: redis.Redis
) -> None:
    connection = redis_client(private_redis_url)
    try:
        await connection.set("retry:key", "1")
        # Redis drops the pooled connection (as on a restart or a proxy timeout): the next
        # command fails on it and is sent again on a new one.
        killed = client.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        assert await connection.get("retry:key") == "1"
    finally:
        await connection.aclose()


async def test_redis_errors_become_store_unavailable() -> None:
    connection = redis_client("redis://127.0.0.1:9/0", retries=1, connect_timeout_s=1.0)
    try:
        expected = pytest.raises(StoreUnavailableError, match=r"Redis call failed \(Connection")
        with expected, redis_errors():
            await connection.ping()
    finally:
        await connection.aclose()
