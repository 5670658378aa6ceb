"""A local Redis Cluster: N masters and R replicas each, as redis-server processes.

``rfm stack up --redis-cluster N --replicas R`` and the tests start one here. Every node
listens on 127.0.0.1 (its cluster bus on the port + 10000), keeps its files in
``DIR/redis-PORT/`` and is started in cluster mode; ``redis-cli --cluster create`` then
assigns the 16,384 hash slots and the replicas, and :func:`start_cluster` returns once every
node sees every slot served.

A node that stops answering is failed over after :data:`NODE_TIMEOUT_MS` (2 s here, so that
tests and trials see a failover quickly; Redis's default is 15 s).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from stream_app.devtools.network import HOST, PROBES, free_port, port_free
from stream_app.devtools.processes import ProcessInfo, exit_code, spawn, terminate
from stream_app.devtools.servers import redis_argv
from stream_app.exceptions import StackError, StackStartError

__all__ = [
    "NODE_TIMEOUT_MS",
    "cluster_state",
    "find_redis_cli",
    "start_cluster",
    "wait_until_served",
]

#: How long a node may be silent before the others fail it over (``cluster-node-timeout``).
NODE_TIMEOUT_MS = 2000

_BUS_OFFSET = 10_000  # Redis's cluster bus listens on the port + 10000
_POLL_S = 0.1


def find_redis_cli() -> Path:
    """The ``redis-cli`` binary (Debian's ``redis-tools``, installed with ``redis-server``)."""
    found = shutil.which("redis-cli")
    if found is None:
        raise StackError("redis-cli not found: apt-get install redis-tools")
    return Path(found)


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + _BUS_OFFSET <= 65535 and port_free(port + _BUS_OFFSET):
            return port
    raise StackStartError("no free port pair (port, port + 10000) for a Redis Cluster node")


def _node_argv(port: int, directory: Path, aof: bool) -> list[str]:
    return [
        *redis_argv(port, directory, aof),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
    ]


def cluster_state(port: int, timeout: float = 1.0) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` as a dict (empty if it does not answer)."""
    try:
        done = subprocess.run(
            [str(find_redis_cli()), "-h", HOST, "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {}
    pairs = (line.strip().split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    return {name: value for name, value in pairs}


def wait_until_served(ports: list[int], timeout: float = 30.0) -> None:
    """Return once every node on ``ports`` reports the cluster ok, all 16,384 slots served.

    Raises
    ------
    StackStartError
        Not so within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        states = [cluster_state(port) for port in ports]
        if all(
            state.get("cluster_state") == "ok" and state.get("cluster_slots_ok") == "16384"
            for state in states
        ):
            return
        if time.monotonic() > deadline:
            raise StackStartError(f"the Redis Cluster did not serve every slot in {timeout:.0f}s")
        time.sleep(_POLL_S)


def start_cluster(
    directory: Path,
    masters: int = 3,
    replicas: int = 0,
    *,
    aof: bool = False,
    die_with_parent: bool = False,
    timeout: float = 30.0,
) -> list[ProcessInfo]:
    """Start a Redis Cluster of ``masters`` masters with ``replicas`` replicas each.

    Parameters
    ----------
    directory
        Each node's files and log go to ``directory/redis-PORT/``; created if missing.
    masters
        Masters (at least 3: Redis Cluster needs a majority of masters to fail one over).
    replicas
        Replicas per master.
    aof
        Turn on each node's append-only file (``appendfsync everysec``).
    die_with_parent
        Ask Linux to SIGTERM the nodes when the thread that started them exits.
    timeout
        Seconds to answer, and then to serve every slot.

    Returns
    -------
    list of ProcessInfo
        The nodes, masters first (in the order ``redis-cli`` was given them: it makes the
        first ``masters`` nodes masters and the rest their replicas).

    Raises
    ------
    StackError
        ``redis-server`` or ``redis-cli`` is missing, or fewer than 3 masters were asked for.
    StackStartError
        A node did not start, or the cluster was not created; nothing is left running.
    """
    if masters < 3:
        raise StackError(f"a Redis Cluster needs at least 3 masters, not {masters}")
    if replicas < 0:
        raise StackError(f"replicas per master cannot be negative ({replicas})")
    cli = find_redis_cli()
    directory.mkdir(parents=True, exist_ok=True)
    nodes: list[ProcessInfo] = []
    try:
        for _ in range(masters * (1 + replicas)):
            port = _cluster_port()
            home = directory / f"redis-{port}"
            home.mkdir(parents=True, exist_ok=True)
            (home / "nodes.conf").unlink(missing_ok=True)
            nodes.append(
                spawn(
                    "redis",
                    port,
                    _node_argv(port, home, aof),
                    home / "redis.log",
                    cwd=home,
                    die_with_parent=die_with_parent,
                )
            )
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not PROBES["redis"](node):
                if exit_code(node) is not None or time.monotonic() > deadline:
                    raise StackStartError(
                        f"Redis Cluster node on port {node.port} did not start; log {node.log}"
                    )
                time.sleep(_POLL_S)
        created = subprocess.run(
            [
                str(cli),
                "--cluster",
                "create",
                *(f"{HOST}:{node.port}" for node in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if created.returncode != 0:
            raise StackStartError(
                f"redis-cli --cluster create failed ({created.returncode}): "
                f"{(created.stdout + created.stderr).strip().splitlines()[-1:]}"
            )
        wait_until_served([node.port for node in nodes], timeout)
    except BaseException:
        terminate(nodes, timeout=5)
        raise
    return nodes
