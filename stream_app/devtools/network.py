"""Local servers over the network: free ports on 127.0.0.1, and whether a server answers.

The probes are synchronous and hand-written (a Kafka metadata request on a plain socket, a
Redis ``INFO``), so they work from CLI code and from inside a running asyncio loop alike, and
each proves that the server answering is the process that was started, not another one that
got the port.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import redis

from stream_app.devtools.processes import ProcessInfo, listener_owned_by

__all__ = ["HOST", "PROBES", "free_port", "kafka_answers", "port_free", "redis_answers"]

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (it may be taken before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether a server can listen on ``port`` on 127.0.0.1 now.

    As Redis and Tansu do, the probe sets ``SO_REUSEADDR``: connections of a server just
    stopped (in ``TIME_WAIT``) do not keep a new one from its port; a listener still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _kafka_request(port: int, api_key: int, body: bytes, timeout: float) -> bytes:
    client_id = b"rfm-stack"
    header = struct.pack(">hhih", api_key, 0, 1, len(client_id)) + client_id
    payload = header + body
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return bytes(data)


def _kafka_brokers(port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """Ask for metadata (v0, all topics) and return the advertised (node, host, port)s."""
    response = _kafka_request(port, api_key=3, body=struct.pack(">i", 0), timeout=timeout)
    offset = 4  # correlation id
    (count,) = struct.unpack_from(">i", response, offset)
    offset += 4
    brokers = []
    for _ in range(count):
        node, host_len = struct.unpack_from(">ih", response, offset)
        offset += 6
        host = response[offset : offset + host_len].decode()
        offset += host_len
        (broker_port,) = struct.unpack_from(">i", response, offset)
        offset += 4
        brokers.append((node, host, broker_port))
    return brokers


def kafka_answers(proc: ProcessInfo) -> bool:
    """Whether the broker ``proc`` answers a metadata request on its port."""
    # Tansu cannot tell its pid over the wire. A broker that lost the race for its port exits
    # (with code 0) while another server answers there, so check who holds the listener.
    if listener_owned_by(proc.pid, proc.port) is False:
        return False
    try:
        brokers = _kafka_brokers(proc.port)
    except (OSError, struct.error, UnicodeDecodeError):
        return False
    return (HOST, proc.port) in {(host, port) for _, host, port in brokers}


def redis_answers(proc: ProcessInfo) -> bool:
    """Whether the Redis server ``proc`` answers on its port (and is that very process)."""
    client = redis.Redis(host=HOST, port=proc.port, socket_timeout=1, socket_connect_timeout=1)
    try:
        # process_id proves the server on that port is the one we started.
        info = client.info("server")
        return int(info.get("process_id", -1)) == proc.pid
    except redis.RedisError:
        return False
    finally:
        client.close()


#: The probe of each kind of server, by :attr:`ProcessInfo.name`.
PROBES: dict[str, Callable[[ProcessInfo], bool]] = {
    "kafka": kafka_answers,
    "redis": redis_answers,
}
