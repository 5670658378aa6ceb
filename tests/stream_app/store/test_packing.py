"""Commands packed by hiredis reach Redis as redis-py's own packer would send them."""

from __future__ import annotations

from redis.asyncio.connection import Connection

from stream_app.store.client import redis_client
from stream_app.store.packing import (
    PackedConnection,
    PackedSSLConnection,
    PackedUnixConnection,
    packed_pool,
)


def test_the_pool_packs_with_hiredis_over_tcp_and_tls() -> None:
    assert packed_pool("redis://127.0.0.1:6379/0").connection_class is PackedConnection
    tls = packed_pool("rediss://user:secret@cache.example:6380/2", decode_responses=True)
    assert tls.connection_class is PackedSSLConnection
    assert (tls.connection_kwargs["username"], tls.connection_kwargs["db"]) == ("user", 2)
    unix = packed_pool("unix:///run/redis/redis.sock?db=1")
    assert unix.connection_class is PackedUnixConnection
    assert unix.connection_kwargs["path"] == "/run/redis/redis.sock"


def test_packed_bytes_equal_redis_py_s_own() -> None:
    python, packed = Connection(), PackedConnection()
    for command in (
        ("SET", "rfm:{é}:state", "x" * 70_000),
        ("ZADD", "rfm:due", 1.5e9, "17850", 3, "12346"),
        ("SCRIPT LOAD", "return 1"),
        ("HINCRBY", "rfm:counters", "events", -2),
    ):
        assert b"".join(packed.pack_command(*command)) == b"".join(python.pack_command(*command))


def test_the_client_factory_takes_a_unix_socket_url() -> None:
    # TCP-only options (keepalive) would make every connection fail on a Unix socket.
    pool = redis_client("unix:///run/redis/redis.sock").connection_pool
    assert pool.connection_class is PackedUnixConnection
    assert "socket_keepalive" not in pool.connection_kwargs
    PackedUnixConnection(**pool.connection_kwargs)  # accepts every option it is given
    assert redis_client("redis://127.0.0.1:6379/0").connection_pool.connection_kwargs[
        "socket_keepalive"
    ]
