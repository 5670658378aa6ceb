"""A local Kafka-protocol broker (Tansu) and Redis server, run as processes of this machine.

``rfm stack up`` and the integration tests need a broker and a Redis without Docker. Both
listen on 127.0.0.1 only, on free ports, and write their logs to the stack's directory
(:mod:`stream_app.devtools.servers` starts them). ``DIR/stack.json`` records what was started
(:class:`~stream_app.devtools.record.StackInfo`) so that another process (``rfm stack down``)
can stop exactly those processes.

Examples
--------
>>> from stream_app.devtools.stack import LocalStack
>>> with LocalStack() as info:  # doctest: +SKIP
...     print(info.env())
{'RFM_KAFKA_BOOTSTRAP': '127.0.0.1:41233', 'RFM_REDIS_URL': 'redis://127.0.0.1:40511/0'}
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from stream_app.devtools.cluster import start_cluster
from stream_app.devtools.network import PROBES
from stream_app.devtools.processes import ProcessInfo, is_ours, terminate
from stream_app.devtools.record import DEFAULT_DIR, STATE_FILE, StackInfo
from stream_app.devtools.servers import start_server
from stream_app.exceptions import StackError, StackNotFoundError

__all__ = [
    "LocalStack",
    "ProcessStatus",
    "StackStatus",
    "start",
    "status",
    "stop",
]


@dataclass(frozen=True)
class ProcessStatus:
    """Whether one recorded process still runs and answers.

    Attributes
    ----------
    info
        The recorded process.
    running
        The pid is alive and is still the process that was started.
    answering
        It answers a protocol request (Kafka metadata, Redis PING).
    """

    info: ProcessInfo
    running: bool
    answering: bool


@dataclass(frozen=True)
class StackStatus:
    """Status of both processes of a recorded stack."""

    info: StackInfo
    kafka: ProcessStatus
    redis: ProcessStatus
    cluster: tuple[ProcessStatus, ...] = ()

    @property
    def processes(self) -> tuple[ProcessStatus, ...]:
        """The broker and every Redis process."""
        return (self.kafka, *(self.cluster or (self.redis,)))

    @property
    def up(self) -> bool:
        """Every process runs and answers."""
        return all(p.running and p.answering for p in self.processes)

    @property
    def down(self) -> bool:
        """No process runs."""
        return not any(p.running for p in self.processes)


def start(
    directory: Path = DEFAULT_DIR,
    *,
    kafka_port: int = 0,
    redis_port: int = 0,
    aof: bool = True,
    timeout: float = 30.0,
    die_with_parent: bool = False,
    redis_cluster: int = 0,
    replicas: int = 0,
) -> StackInfo:
    """Start Tansu and Redis, wait until both answer, and record them in ``DIR/stack.json``.

    Parameters
    ----------
    directory
        Where the logs, Redis's files and ``stack.json`` go; created if missing.
    kafka_port, redis_port
        Ports on 127.0.0.1; 0 picks a free one.
    aof
        Turn on Redis's append-only file (``appendfsync everysec``) in ``directory``, so that
        a Redis started again in the same directory finds its data (``rfm stack up``'s
        default); False for a throwaway run.
    timeout
        Seconds each server has to answer.
    die_with_parent
        Ask Linux to SIGTERM both servers when the thread that started them exits (for test
        sessions; not for ``rfm stack up``, whose servers outlive the command). Start them
        from the main thread when this is set.
    redis_cluster
        Masters of a Redis Cluster to start instead of one Redis (0: one Redis; else at
        least 3), see :func:`~stream_app.devtools.cluster.start_cluster`.
    replicas
        Replicas per master of that cluster.

    Returns
    -------
    StackInfo
        The started stack.

    Raises
    ------
    StackError
        A stack recorded in ``directory`` still runs (stop it first), or a binary is missing.
    StackStartError
        A server did not start or answer; nothing is left running.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(StackNotFoundError):
        previous = status(directory)
        if not previous.down:
            raise StackError(
                f"a stack already runs in {directory} (broker pid {previous.info.kafka.pid}, "
                f"redis pid {previous.info.redis.pid}): run `rfm stack down --dir {directory}`"
            )
        (directory / STATE_FILE).unlink(missing_ok=True)  # left behind by a crash
    started: list[ProcessInfo] = []
    nodes: list[ProcessInfo] = []
    try:
        servers = [("kafka", kafka_port)] + ([] if redis_cluster else [("redis", redis_port)])
        for name, port in servers:
            started.append(
                start_server(
                    name,
                    directory,
                    port=port,
                    aof=aof,
                    die_with_parent=die_with_parent,
                    timeout=timeout,
                )
            )
        if redis_cluster:
            nodes = start_cluster(
                directory,
                redis_cluster,
                replicas,
                aof=aof,
                die_with_parent=die_with_parent,
                timeout=timeout,
            )
            started.append(nodes[0])
    except BaseException:
        terminate([*started, *nodes], timeout=5)
        raise
    info = StackInfo(
        directory=directory,
        kafka=started[0],
        redis=started[1],
        aof=aof,
        cluster=tuple(nodes),
        replicas=replicas if nodes else 0,
    )
    info.save()
    return info


def status(directory: Path = DEFAULT_DIR) -> StackStatus:
    """Tell whether the stack recorded in ``directory`` runs and answers.

    Raises
    ------
    StackNotFoundError
        No stack was started in ``directory``.
    """
    info = StackInfo.load(directory)

    def check(proc: ProcessInfo) -> ProcessStatus:
        running = is_ours(proc)
        return ProcessStatus(
            info=proc, running=running, answering=running and PROBES[proc.name](proc)
        )

    return StackStatus(
        info=info,
        kafka=check(info.kafka),
        redis=check(info.redis),
        cluster=tuple(check(node) for node in info.cluster),
    )


def stop(directory: Path = DEFAULT_DIR, *, timeout: float = 10.0) -> StackInfo:
    """Stop exactly the processes recorded in ``DIR/stack.json`` and remove that file.

    Each process gets SIGTERM, then SIGKILL if still alive after ``timeout`` seconds. A pid
    that now belongs to another process (checked by its start time) is left alone. Logs stay.

    Returns
    -------
    StackInfo
        What was recorded (and is now stopped).

    Raises
    ------
    StackNotFoundError
        No stack was started in ``directory``.
    StackError
        A process survived SIGKILL.
    """
    info = StackInfo.load(directory)
    survivors = terminate([info.kafka, *info.redis_nodes], timeout)
    if survivors:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in survivors)
        raise StackError(f"could not stop {names}")
    (Path(directory) / STATE_FILE).unlink(missing_ok=True)
    return info


class LocalStack:
    """Context manager running a stack for as long as a block (a test session, ``rfm demo``).

    Parameters
    ----------
    directory
        Where to put logs and ``stack.json``; a new temporary directory when ``None`` (removed
        at exit unless ``keep_dir``).
    aof
        Turn on Redis's append-only file (off: a block's stack is a throwaway one).
    timeout
        Seconds each server has to answer at start and to stop after SIGTERM.
    die_with_parent
        Also have Linux stop the servers if this process dies without running ``__exit__``
        (killed, crashed). Enter the block from the main thread when this is set.
    keep_dir
        Keep a temporary directory (and its logs) after exit.
    redis_cluster, replicas
        Start a Redis Cluster of that many masters, each with ``replicas`` replicas, instead
        of one Redis (0: one Redis).

    Examples
    --------
    >>> with LocalStack() as info:  # doctest: +SKIP
    ...     settings = info.settings(app_id="demo")
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        aof: bool = False,
        timeout: float = 30.0,
        die_with_parent: bool = True,
        keep_dir: bool = False,
        redis_cluster: int = 0,
        replicas: int = 0,
    ) -> None:
        self.redis_cluster = redis_cluster
        self.replicas = replicas
        self.directory = directory
        self.aof = aof
        self.timeout = timeout
        self.die_with_parent = die_with_parent
        self.keep_dir = keep_dir
        self.info: StackInfo | None = None
        self._temporary: Path | None = None

    def start(self) -> StackInfo:
        """Start the stack (see :func:`start`) and return it."""
        if self.info is not None:
            return self.info
        if self.directory is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="rfm-stack-"))
        directory = self.directory or self._temporary
        assert directory is not None
        try:
            self.info = start(
                directory,
                aof=self.aof,
                timeout=self.timeout,
                die_with_parent=self.die_with_parent,
                redis_cluster=self.redis_cluster,
                replicas=self.replicas,
            )
        except BaseException:
            self._cleanup_dir()
            raise
        return self.info

    def stop(self) -> None:
        """Stop the stack if it runs, and remove a temporary directory."""
        if self.info is not None:
            try:
                stop(self.info.directory, timeout=self.timeout)
            finally:
                self.info = None
                self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._temporary is not None and not self.keep_dir:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
