"""Connections that pack commands with hiredis, as redis-py's synchronous client does.

redis-py's asyncio connections pack every command in Python, argument by argument; a batch of
order events carries thousands of key names, and packing them cost more than the rest of the
store's Python work. redis-py's synchronous connections use hiredis's packer when it is
installed; these asyncio connections use it too. Replies are unchanged: parsing already goes
through hiredis.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection, parse_url
from redis.exceptions import DataError

__all__ = ["PackedConnection", "PackedSSLConnection", "packed_pool"]


def _pack(args: tuple[Any, ...]) -> list[bytes]:
    """One command in the Redis protocol (str, bytes, int and float arguments)."""
    name = args[0]
    if isinstance(name, str) and " " in name:  # e.g. "SCRIPT LOAD": two words, two arguments
        args = (*name.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except TypeError as exc:
        raise DataError(str(exc)) from exc


class PackedConnection(Connection):
    """A TCP connection whose commands are packed by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


class PackedSSLConnection(SSLConnection):
    """A TLS connection whose commands are packed by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


def packed_pool(url: str, **options: Any) -> ConnectionPool:
    """A connection pool for a ``redis://`` or ``rediss://`` URL whose connections use hiredis.

    ``options`` go to the connections (e.g. ``decode_responses=True``).
    """
    settings: dict[str, Any] = {**options, **parse_url(url)}
    tls = settings.get("connection_class") is SSLConnection
    settings["connection_class"] = PackedSSLConnection if tls else PackedConnection
    return ConnectionPool(**settings)
