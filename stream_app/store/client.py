"""The one place Redis clients are made: async, decoding to ``str``, retrying at the connection.

Everything of the worker process that talks to Redis (the customer-state store, the model
registry's pointer, the coordination between workers) and the ``rfm`` commands get their client
from :func:`redis_client`, so timeouts and retries are the same everywhere.

A command that fails with a connection error or a timeout (Redis restarting, a failover, a
dropped connection) is sent again on a new connection, after an exponentially growing pause, a
few times; only then does the error reach the caller, where :func:`redis_errors` turns it into
:class:`~stream_app.exceptions.StoreUnavailableError`. A command whose reply was lost may so
run twice; what that means for a command is said where it is sent (e.g.
:mod:`stream_app.store.coordination`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    NoPermissionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from stream_app.exceptions import (
    StoreAccessError,
    StoreDataError,
    StoreLostError,
    StoreUnavailableError,
)
from stream_app.store.packing import PackedConnection, PackedSSLConnection, packed_pool

if TYPE_CHECKING:
    from stream_app.settings import Settings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HEALTH_CHECK_INTERVAL_S",
    "RETRIES",
    "SOCKET_TIMEOUT_S",
    "access_problem",
    "cluster_client",
    "configured_client",
    "is_transient",
    "redacted_url",
    "redis_client",
    "redis_errors",
]

#: Times a command is sent again after a connection error or a timeout.
RETRIES = 3

#: Longest wait for a TCP connection to Redis.
CONNECT_TIMEOUT_S = 5.0

#: Longest wait for one reply. The longest commands here (a chunk of the stream's Lua script
#: calls, a registry script) take milliseconds; ten seconds means Redis is stuck, not busy.
SOCKET_TIMEOUT_S = 10.0

#: A connection idle this long is checked with a PING before it is used again, so one that
#: a proxy or a Redis restart closed meanwhile is replaced instead of failing the command.
HEALTH_CHECK_INTERVAL_S = 30

# Pauses between attempts: 0.05 s doubling up to 1 s (0.05, 0.1, 0.2 for three retries).
_BACKOFF_BASE_S = 0.05
_BACKOFF_CAP_S = 1.0
_RETRIED_ERRORS: tuple[type[RedisError], ...] = (ConnectionError, TimeoutError)


def redis_client(
    url: str,
    *,
    ca_certs: Path | None = None,
    retries: int = RETRIES,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> aioredis.Redis:
    """Create an async client of the Redis at ``url`` (a ``redis://`` or ``rediss://`` DSN).

    Replies are decoded to ``str``. Nothing connects until the first command; close the
    client with ``await client.aclose()``.

    Parameters
    ----------
    url
        The DSN, e.g. ``redis://127.0.0.1:6379/0`` (``RFM_REDIS_URL``); an ACL user as
        ``rediss://USER:PASSWORD@HOST:PORT/0``.
    ca_certs
        With a ``rediss://`` URL: the CA certificates (PEM) the server's certificate must be
        signed by (``RFM_REDIS_SSL_CA_CERTS``); None: the system's.
    retries
        Times a command is sent again after a connection error or a timeout.
    socket_timeout_s, connect_timeout_s
        Longest wait for a reply, and for a connection.

    Returns
    -------
    redis.asyncio.Redis
        The client, with its own connection pool.

    Examples
    --------
    >>> import asyncio
    >>> client = redis_client("redis://127.0.0.1:6379/0")
    >>> client.get_connection_kwargs()["decode_responses"]
    True
    >>> asyncio.run(client.aclose())
    """
    # Commands are packed by hiredis (stream_app.store.packing), as redis-py's sync client does.
    pool = packed_pool(
        url,
        decode_responses=True,
        retry=Retry(
            ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S),
            retries,
            supported_errors=_RETRIED_ERRORS,
        ),
        retry_on_error=list(_RETRIED_ERRORS),
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        # TCP keepalive notices a peer that vanished; a Unix socket has no such option.
        **({} if url.startswith("unix://") else {"socket_keepalive": True}),
        **({"ssl_ca_certs": str(ca_certs)} if ca_certs is not None else {}),
    )
    return aioredis.Redis.from_pool(pool)


#: The connection class of a cluster's nodes, without and with TLS.
_PACKED_CLUSTER = {False: PackedConnection, True: PackedSSLConnection}


def cluster_client(
    url: str,
    *,
    ca_certs: Path | None = None,
    retries: int = RETRIES,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> RedisCluster:
    """Create an async client of the Redis Cluster one of whose nodes is at ``url``.

    ``url`` may name several nodes, comma-separated (``redis://a:7000/0,redis://b:7001/0``):
    the first that answers is asked for the others, so a client can start while one of them
    is down. User, password and TLS come from the first. The client finds the nodes and the
    slots each serves, sends each command to the node serving its key, and after a connection
    error or a ``MOVED`` reply (a failover, a resharding) learns the cluster again and sends
    the command there. Replies are decoded to ``str``; the parameters are
    :func:`redis_client`'s (the database is always 0).

    >>> import asyncio
    >>> client = cluster_client("redis://127.0.0.1:7000/0,redis://127.0.0.1:7001/0")
    >>> [node.name for node in client.nodes_manager.startup_nodes.values()]
    ['127.0.0.1:7000', '127.0.0.1:7001']
    >>> asyncio.run(client.aclose())
    """
    addresses = [urlsplit(part.strip()) for part in url.split(",") if part.strip()]
    first = addresses[0]
    client = RedisCluster(
        startup_nodes=[
            ClusterNode(part.hostname or "127.0.0.1", part.port or 6379) for part in addresses
        ],
        username=first.username,
        password=first.password,
        ssl=first.scheme == "rediss",
        decode_responses=True,
        retry=Retry(
            ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S),
            retries,
            supported_errors=_RETRIED_ERRORS,
        ),
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        socket_keepalive=True,
        ssl_ca_certs=None if ca_certs is None else str(ca_certs),
    )
    # Commands are packed by hiredis (stream_app.store.packing), on every node's connections.
    packed = _PACKED_CLUSTER[first.scheme == "rediss"]
    client.connection_kwargs["connection_class"] = packed
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = packed
    return client


def configured_client(
    settings: Settings,
    *,
    retries: int = RETRIES,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> Any:
    """The client of the Redis the settings name (``RFM_REDIS_URL``, ``RFM_REDIS_SSL_CA_CERTS``):
    a cluster client when ``RFM_REDIS_CLUSTER`` is set. The other parameters are
    :func:`redis_client`'s."""
    make = cluster_client if settings.redis_cluster else redis_client
    return make(
        settings.redis_url,
        ca_certs=settings.redis_ssl_ca_certs,
        retries=retries,
        socket_timeout_s=socket_timeout_s,
        connect_timeout_s=connect_timeout_s,
    )


#: Replies that say Redis cannot serve now (out of memory, loading, failing over, unable to
#: persist): the same call may succeed later.
_TRANSIENT_REPLIES = ("OOM", "LOADING", "MASTERDOWN", "NOREPLICAS", "MISCONF", "BUSY")
_TRANSIENT_ERRORS = (
    ConnectionError,
    TimeoutError,
    ClusterDownError,
    MasterDownError,
    NoPermissionError,
    ReadOnlyError,
    TryAgainError,
)


def redacted_url(url: str) -> str:
    """``url`` with its password hidden, for logs and messages.

    >>> redacted_url("rediss://rfm:s3cret@redis.example.com:6380/0")
    'rediss://rfm:***@redis.example.com:6380/0'
    >>> redacted_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    >>> redacted_url("redis://a:s3cret@n1:7000/0,redis://a:s3cret@n2:7001/0")
    'redis://a:***@n1:7000/0,redis://a:***@n2:7001/0'
    """
    if "," in url:
        return ",".join(redacted_url(part) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def access_problem(exc: RedisError) -> str | None:
    """What to fix when Redis refused this client (not an outage); None for other errors.

    >>> access_problem(AuthenticationError("invalid username-password pair"))
    'Redis refused the user or password of RFM_REDIS_URL (invalid username-password pair)'
    >>> access_problem(ConnectionError("Connection refused")) is None
    True
    """
    if isinstance(exc, AuthenticationError):
        return f"Redis refused the user or password of RFM_REDIS_URL ({exc})"
    if isinstance(exc, NoPermissionError):
        return (
            f"the ACL user of RFM_REDIS_URL may not run a command or touch a key the service "
            f"needs ({exc}); allow the commands and the keys ~RFM_KEY_PREFIX:*"
        )
    if isinstance(exc, ResponseError) and str(exc).startswith("NOAUTH"):
        return f"Redis needs a user and password in RFM_REDIS_URL ({exc})"
    if isinstance(exc, ConnectionError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return f"TLS certificate of Redis not trusted by RFM_REDIS_SSL_CA_CERTS ({exc})"
    if isinstance(exc, ConnectionError) and "WRONG_VERSION_NUMBER" in str(exc):
        return f"Redis does not speak TLS there: use redis:// in RFM_REDIS_URL ({exc})"
    return None


def is_transient(exc: RedisError) -> bool:
    """Whether a Redis error may go away by itself (the call is worth sending again).

    A refusal of this client (its password, its certificate, its ACL) is not.

    >>> is_transient(ConnectionError("reset")), is_transient(ResponseError("OOM no memory"))
    (True, True)
    >>> is_transient(ResponseError("WRONGTYPE Operation against a key"))
    False
    >>> is_transient(AuthenticationError("invalid username-password pair"))
    False
    """
    if access_problem(exc) is not None:
        return False
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn redis-py's errors raised inside the block into ours.

    Works around ``await`` too: ``with redis_errors(): value = await client.get(key)``.

    Raises
    ------
    StoreUnavailableError
        A Redis call inside the block failed for a reason that may pass (a connection error,
        a timeout, Redis loading or out of memory; after the client's retries).
    StoreDataError
        Redis refused the call for what it carried (a script error, a key of the wrong type):
        sending it again would fail again.
    StoreLostError
        A script found the store epoch gone or changed (``RFMLOST``): the store was wiped.
    StoreAccessError
        Redis refused this client: its password, its TLS certificate or its ACL.
    """
    try:
        yield
    except RedisError as exc:
        problem = access_problem(exc)
        if problem is not None:
            raise StoreAccessError(problem) from exc
        message = f"Redis call failed ({type(exc).__name__}: {exc})"
        if isinstance(exc, ResponseError) and str(exc).startswith("RFMLOST"):
            raise StoreLostError(str(exc).removeprefix("RFMLOST ")) from exc
        if is_transient(exc):
            raise StoreUnavailableError(message) from exc
        raise StoreDataError(message) from exc
