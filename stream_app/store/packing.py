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
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import DataError

__all__ = ["PackedConnection", "PackedSSLConnection", "PackedUnixConnection", "packed_pool"]


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


class PackedUnixConnection(UnixDomainSocketConnection):
    """A Unix-socket connection whose commands are packed by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


#: redis-py's connection class for each URL scheme, and ours that packs with hiredis.
_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: PackedConnection,
    SSLConnection: PackedSSLConnection,
    UnixDomainSocketConnection: PackedUnixConnection,
}


def packed_pool(url: str, **options: Any) -> ConnectionPool:
    """A connection pool for a ``redis://``, ``rediss://`` or ``unix://`` URL, packing with hiredis.

    ``options`` go to the connections (e.g. ``decode_responses=True``).
    """
    settings: dict[str, Any] = {**options, **parse_url(url)}
    chosen = settings.get("connection_class", Connection)
    settings["connection_class"] = _PACKED.get(chosen, chosen)
    return ConnectionPool(**settings)
