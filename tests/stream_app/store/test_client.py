"""The one Redis client factory: what each client gets, retries, and no synchronous client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis
import trustme
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoPermissionError,
    RedisError,
    ResponseError,
    TimeoutError,
)

import stream_app
from stream_app.exceptions import StoreAccessError, StoreDataError, StoreUnavailableError
from stream_app.settings import Settings
from stream_app.store.client import (
    CONNECT_TIMEOUT_S,
    HEALTH_CHECK_INTERVAL_S,
    RETRIES,
    SOCKET_TIMEOUT_S,
    configured_client,
    is_transient,
    redacted_url,
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


# ------------------------------------------------------------------ no synchronous client

#: The layers that run in the worker process (the CLI and the developer tools may block).
ASYNC_LAYERS = ("core", "service", "store", "kafka")
PACKAGE = Path(stream_app.__file__).parent

#: What of redis-py is synchronous: the clients, their pools and their modules.
_SYNC_NAMES = frozenset(
    {
        "BlockingConnectionPool",
        "Connection",
        "ConnectionPool",
        "Redis",
        "RedisCluster",
        "Sentinel",
        "StrictRedis",
        "client",
        "cluster",
        "connection",
        "from_url",
        "sentinel",
    }
)


def sync_redis_uses(source: str) -> list[str]:
    """Where ``source`` imports or uses redis-py's synchronous client (``line: what``)."""
    tree = ast.parse(source)
    top_level: set[str] = set()  # names bound to the `redis` package itself
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != "redis":
                    continue
                if len(parts) > 1 and parts[1] in _SYNC_NAMES:
                    found.append(f"{node.lineno}: import {alias.name}")
                if alias.asname is None or len(parts) == 1:
                    # `import redis.asyncio` binds `redis` too; `import redis.asyncio as x`
                    # binds x to redis.asyncio.
                    top_level.add(alias.asname or "redis")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "redis":
                continue
            if len(parts) > 1 and parts[1] in _SYNC_NAMES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif len(parts) == 1:
                found.extend(
                    f"{node.lineno}: from redis import {alias.name}"
                    for alias in node.names
                    if alias.name in _SYNC_NAMES
                )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in top_level
            and node.attr in _SYNC_NAMES
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import redis\nclient = redis.Redis()",
        "import redis\nclient = redis.from_url('redis://x')",
        "import redis as r\nclient = r.StrictRedis.from_url('redis://x')",
        "from redis import Redis",
        "from redis.client import Pipeline",
        "import redis.client",
        "import redis.asyncio\nclient = redis.Redis()",
    ],
)
def test_the_check_finds_a_synchronous_client(source: str) -> None:
    assert sync_redis_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        "import redis.asyncio as aioredis\nclient = aioredis.Redis.from_url('redis://x')",
        "import redis.asyncio\nclient = redis.asyncio.Redis()",
        "from redis.asyncio.retry import Retry\nfrom redis.exceptions import RedisError",
        "import redis\nerror = redis.RedisError",
        "from redis.backoff import ExponentialBackoff",
    ],
)
def test_the_check_lets_async_use_through(source: str) -> None:
    assert sync_redis_uses(source) == []


def test_no_worker_module_uses_the_synchronous_client() -> None:
    modules = sorted(path for layer in ASYNC_LAYERS for path in (PACKAGE / layer).rglob("*.py"))
    assert len(modules) > 20
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in modules
        if (uses := sync_redis_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "the worker process must use stream_app.store.client.redis_client"


async def test_a_refused_call_is_a_data_error_not_an_outage(private_redis_url: str) -> None:
    connection = redis_client(private_redis_url)
    try:
        await connection.set("rfm-test:text", "x")
        with pytest.raises(StoreDataError, match="WRONGTYPE"), redis_errors():
            await connection.hincrby("rfm-test:text", "field", 1)
    finally:
        await connection.delete("rfm-test:text")
        await connection.aclose()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rediss://rfm:pw-5e1a@cache.example.com:6380/0", "rediss://rfm:***@cache.example.com:6380/0"),
        ("redis://:pw-5e1a@cache:6379/2", "redis://:***@cache:6379/2"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ],
)  # fmt: skip
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


async def test_a_tls_client_checks_the_server_against_the_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    client = configured_client(
        Settings(
            redis_url="rediss://rfm:pw@cache.example.com:6380/0",
            redis_ssl_ca_certs=_ca_file(ca),
        )
    )
    try:
        options = client.get_connection_kwargs()
        assert options["ssl_ca_certs"] == str(ca)
        assert (options["username"], options["password"]) == ("rfm", "pw")
        assert client.connection_pool.connection_class.__name__ == "PackedSSLConnection"
    finally:
        await client.aclose()
    plain = configured_client(Settings())
    try:
        assert "ssl_ca_certs" not in plain.get_connection_kwargs()
    finally:
        await plain.aclose()


def _ca_file(path: Path) -> Path:
    trustme.CA().cert_pem.write_to_path(path)
    return path


@pytest.mark.parametrize(
    ("error", "names"),
    [
        (AuthenticationError("invalid username-password pair"), "RFM_REDIS_URL"),
        (ResponseError("NOAUTH Authentication required."), "RFM_REDIS_URL"),
        (NoPermissionError("this user has no permissions to run the 'flushall' command"),
         "~RFM_KEY_PREFIX:*"),
        (ConnectionError("Error 1 connecting to cache:6380. [SSL: CERTIFICATE_VERIFY_FAILED] "
                         "certificate verify failed"), "RFM_REDIS_SSL_CA_CERTS"),
    ],
)  # fmt: skip
def test_refusals_are_not_outages(error: RedisError, names: str) -> None:
    assert not is_transient(error)
    with pytest.raises(StoreAccessError) as raised, redis_errors():
        raise error
    assert names in str(raised.value)
