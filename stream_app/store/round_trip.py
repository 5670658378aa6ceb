"""Commands sent to Redis together: one pipeline, one round trip, Lua scripts included.

redis-py's own pipelines check that every script they carry is loaded with a ``SCRIPT EXISTS``
before each execution: a second round trip on every pipelined script call. Here scripts go
out as plain ``EVALSHA``; a script Redis does not know (after a restart or ``SCRIPT FLUSH``)
fails with ``NOSCRIPT`` without running, so exactly those calls are loaded and sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from importlib.resources import files
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from stream_app.store.client import redis_errors

__all__ = ["RoundTrip", "Script", "call", "lua_script"]

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


class RoundTrip:
    """Queue commands and scripts, then send them all at once with :meth:`execute`.

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis`` (or cluster) client.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queued: list[_Queued] = []

    def __len__(self) -> int:
        return len(self._queued)

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue a script call."""
        self._queued.append((script, "EVALSHA", (script.sha, len(keys), *keys, *args)))

    def command(self, name: str, *args: Any) -> None:
        """Queue a plain command, e.g. ``command("ZADD", key, score, member)``."""
        self._queued.append((None, name, args))

    async def execute(self) -> list[Any]:
        """Send everything queued in one round trip; return the replies in queue order.

        Raises
        ------
        StoreUnavailableError
            Redis failed, or a command or script failed (nothing is retried here).
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
            pipe.execute_command(name, *args)
        try:
            replies: list[Any] = await call(pipe.execute(raise_on_error=False))
        finally:
            # Give the connection back to the pool even when the call failed.
            await pipe.reset()
        return replies
