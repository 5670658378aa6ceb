"""Server processes of this machine: start them, tell whether they still run, stop them.

A recorded pid is trusted only while it is still the process that was started: its start time
in ``/proc/<pid>/stat`` tells it apart from a later process that reuses the pid, so stopping a
stale record never kills a bystander. Children started by this interpreter are also kept here,
so that they are reaped (no zombies) and their exit codes can be read.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ProcessInfo",
    "exit_code",
    "is_ours",
    "listener_owned_by",
    "spawn",
    "terminate",
]

_POLL_S = 0.05

# Children started by this interpreter, kept so that terminate() can reap them (no zombies) and
# so that Popen objects are not garbage-collected while running (that warns).
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


# --- starting ------------------------------------------------------------------------------


def spawn(
    name: str, port: int, argv: Sequence[str], log: Path, cwd: Path, die_with_parent: bool
) -> ProcessInfo:
    """Start ``argv`` as a server in its own session, its output going to ``log``.

    Parameters
    ----------
    name, port
        What the process is and where it listens (recorded, not used to start it).
    argv
        The command line.
    log
        File receiving stdout and stderr (truncated).
    cwd
        Working directory of the process.
    die_with_parent
        Ask Linux to SIGTERM the process when the thread that started it exits.

    Returns
    -------
    ProcessInfo
        The started process (it may not answer yet).
    """
    with log.open("wb") as out:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own cwd keeps Tansu from reading a stray .env; its own session keeps a
            # Ctrl-C in the starting terminal from reaching the servers.
            cwd=cwd,
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


def exit_code(proc: ProcessInfo) -> int | None:
    """The exit code of a process this interpreter started, once it has exited; else None."""
    child = _CHILDREN.get(proc.pid)
    return None if child is None else child.poll()


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


# --- identity ------------------------------------------------------------------------------


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


def is_ours(proc: ProcessInfo) -> bool:
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


def listener_owned_by(pid: int, port: int) -> bool | None:
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


# --- stopping ------------------------------------------------------------------------------


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
    while is_ours(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _signal(proc: ProcessInfo, sig: signal.Signals) -> None:
    if is_ours(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def terminate(procs: Sequence[ProcessInfo], timeout: float) -> list[ProcessInfo]:
    """SIGTERM every process, SIGKILL those still alive after ``timeout``; return survivors.

    A pid that now belongs to another process (checked by its start time) is left alone.
    """
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    stubborn = [proc for proc in procs if not _wait_gone(proc, timeout)]
    for proc in stubborn:
        _signal(proc, signal.SIGKILL)
    return [proc for proc in stubborn if not _wait_gone(proc, timeout)]
