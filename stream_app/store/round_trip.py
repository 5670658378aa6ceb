"""Commands sent to Redis together: one pipeline, one round trip, Lua scripts included.

redis-py's own pipelines check that every script they carry is loaded with a ``SCRIPT EXISTS``
before each execution: a second round trip on every pipelined script call. Here scripts go
out as plain ``EVALSHA``; a script Redis does not know (after a restart or ``SCRIPT FLUSH``)
fails with ``NOSCRIPT`` without running, so exactly those calls are loaded and sent again.

On a Redis Cluster the pipeline sends each node its commands on one connection. With
``wait_replicas`` a ``WAIT`` ends each node's share: the round trip returns only once that
node's replicas hold its writes, so a failover (which promotes a replica) keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from importlib.resources import files
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from stream_app.exceptions import StoreUnavailableError
from stream_app.store.client import redis_errors

__all__ = ["WAIT_TIMEOUT_MS", "ReplicaWait", "RoundTrip", "Script", "call", "lua_script"]

#: Longest wait for the replicas of a node to confirm a round trip's writes.
WAIT_TIMEOUT_MS = 2000
#: How long a node's count of connected replicas is trusted before it is asked again.
REPLICAS_TTL_S = 5.0


class ReplicaWait:
    """How many replicas each cluster node's writes must reach, and what each node has.

    A node with fewer connected replicas than asked (a replica down, or a promoted replica
    whose master is gone) is waited on for those it has; one with none is not waited on. The
    counts come from ``INFO replication`` and are asked again after :data:`REPLICAS_TTL_S`.
    """

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self._known: dict[str, tuple[int, float]] = {}

    def wanted(self, node: Any) -> int:
        """Replicas to wait for on ``node`` (the asked number until its count is known)."""
        known = self._known.get(node.name)
        if known is None or time.monotonic() - known[1] > REPLICAS_TTL_S:
            return self.replicas
        return min(self.replicas, known[0])

    def targets(self, nodes: Sequence[Any]) -> list[tuple[Any, int]]:
        """Each of ``nodes`` with the replicas to wait for there, leaving out those with none."""
        return [(node, wanted) for node in nodes if (wanted := self.wanted(node))]

    def learn(self, node: Any, connected: int) -> None:
        """Remember that ``node`` has ``connected`` replicas."""
        self._known[node.name] = (connected, time.monotonic())


T = TypeVar("T")
#: A queued call: the script it runs (None for a plain command), the command, its arguments.
_Queued = tuple["Script | None", str, tuple[Any, ...]]


class Script:
    """A Lua script and its SHA1, as Redis names it."""

    def __init__(self, client: Any, body: str) -> None:
        self._registered = client.register_script(body)
        self.body = body
        self.sha: str = self._registered.sha

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the script on its own (redis-py loads it if Redis does not know it)."""
        return await call(self._registered(keys=list(keys), args=list(args)))


def lua_script(client: Any, name: str) -> Script:
    """The script ``stream_app/store/lua/<name>``, bound to ``client``."""
    return Script(client, files("stream_app.store").joinpath("lua", name).read_text())


async def call(awaitable: Awaitable[T]) -> T:
    """Await one Redis call, turning redis-py's errors into ours (which the worker retries)."""
    with redis_errors():
        return await awaitable


class _Node:
    """The cluster node a queued call goes to (it names no key to route it by)."""

    def __init__(self, node: Any) -> None:
        self.node = node


class RoundTrip:
    """Queue commands and scripts, then send them all at once with :meth:`execute`.

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis`` or ``RedisCluster`` client.
    wait
        On a cluster: the replicas each node's writes must reach before :meth:`execute`
        returns (fewer if the node has fewer connected replicas); None: no wait.
    """

    def __init__(self, client: Any, wait: ReplicaWait | None = None) -> None:
        self.client = client
        self.wait = wait if isinstance(client, RedisCluster) and wait and wait.replicas else None
        self._queued: list[_Queued] = []

    def __len__(self) -> int:
        return len(self._queued)

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue a script call."""
        self._queued.append((script, "EVALSHA", (script.sha, len(keys), *keys, *args)))

    def node_script(self, script: Script, node: Any, args: Sequence[Any]) -> None:
        """Queue a call of a script that names no keys, on one node of a cluster."""
        self._queued.append((script, "EVALSHA", (script.sha, 0, *args, _Node(node))))

    def command(self, name: str, *args: Any) -> None:
        """Queue a plain command, e.g. ``command("ZADD", key, score, member)``."""
        self._queued.append((None, name, args))

    async def execute(self) -> list[Any]:
        """Send everything queued in one round trip; return the replies in queue order.

        Raises
        ------
        StoreUnavailableError
            Redis failed, or a command or script failed (nothing is retried here), or a node's
            replicas did not confirm its writes in time.
        """
        if not self._queued:
            return []
        replies = await self._send(self._queued)
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Those calls did not run: load their scripts and send exactly them again.
            for script in {self._queued[index][0] for index in missing}:
                assert script is not None
                await call(self.client.script_load(script.body))
            again = await self._send([self._queued[index] for index in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                with redis_errors():
                    raise reply
        self._queued.clear()
        return replies

    async def _send(
        self, queued: Sequence[tuple[Script | None, str, tuple[Any, ...]]]
    ) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for _, name, args in queued:
            if args and isinstance(args[-1], _Node):
                pipe.execute_command(name, *args[:-1], target_nodes=args[-1].node)
            else:
                pipe.execute_command(name, *args)
        # Each master and the replicas to wait for there (none: not waited on).
        waits = [] if self.wait is None else self.wait.targets(self.client.get_primaries())
        for node, wanted in waits:
            # After the node's commands, on their connection. A node this round trip wrote
            # nothing to answers at once: WAIT waits for the connection's own writes.
            pipe.execute_command("WAIT", wanted, WAIT_TIMEOUT_MS, target_nodes=node)
        try:
            replies: list[Any] = await call(pipe.execute(raise_on_error=False))
        finally:
            # Give the connection back to the pool even when the call failed.
            await pipe.reset()
        if waits:
            acks = replies[len(queued) :]
            del replies[len(queued) :]
            await self._check_replicated(waits, acks)
        return replies

    async def _check_replicated(
        self, waits: Sequence[tuple[Any, int]], acks: Sequence[Any]
    ) -> None:
        """Fail unless every node's writes reached its replicas (those connected to it)."""
        wait = self.wait
        assert wait is not None
        for (node, wanted), ack in zip(waits, acks, strict=True):
            if isinstance(ack, Exception):
                with redis_errors():
                    raise ack
            if int(ack) >= wanted:
                continue
            info = await call(self.client.info("replication", target_nodes=node))
            connected = int(info.get(node.name, info).get("connected_slaves", 0))
            wait.learn(node, connected)
            if int(ack) < min(wait.replicas, connected):
                raise StoreUnavailableError(
                    f"the writes on Redis node {node.name} reached {ack} of its {connected} "
                    f"replicas in {WAIT_TIMEOUT_MS} ms: not stored for sure yet"
                )
