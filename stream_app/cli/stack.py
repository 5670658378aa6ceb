"""``rfm stack``: run a local broker (Tansu) and Redis without Docker.

``eval "$(rfm stack up)"`` starts both and sets ``RFM_KAFKA_BOOTSTRAP`` and ``RFM_REDIS_URL``
in the calling shell: only ``export`` lines go to stdout, every message goes to stderr.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from stream_app.devtools import stack as local_stack
from stream_app.devtools.record import DEFAULT_DIR, StackInfo
from stream_app.exceptions import StackError, StackNotFoundError

__all__ = ["stack"]

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Directory holding stack.json, the logs and Redis's files.",
)


def _exports(info: StackInfo) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in info.env().items())


def _persistence(info: StackInfo) -> str:
    if info.aof is None:
        return "persistence not recorded (a stack started by an older release)"
    if info.aof:
        return f"append-only file in {info.directory} (fsync every second): kept across restarts"
    return "no persistence (--no-aof): the data goes when Redis stops"


def _note(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def stack() -> None:
    """Run a Kafka-protocol broker (Tansu) and a Redis server on this machine."""


@stack.command()
@_DIR_OPTION
@click.option("--kafka-port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option("--redis-port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option(
    "--aof/--no-aof",
    default=True,
    show_default=True,
    help="Keep Redis's data in an append-only file in --dir (fsync every second), so a "
    "restarted stack finds it again; --no-aof for a throwaway run.",
)
@click.option(
    "--redis-cluster",
    "masters",
    type=click.IntRange(min=0),
    default=0,
    help="Start a Redis Cluster of this many masters (at least 3) instead of one Redis.",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Replicas per master of the --redis-cluster (a killed master fails over to one).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to answer.")
def up(
    directory: Path,
    kafka_port: int,
    redis_port: int,
    aof: bool,
    masters: int,
    replicas: int,
    timeout: float,
) -> None:
    """Start the broker and Redis; print `export` lines for `eval "$(rfm stack up)"`.

    Redis keeps its data in an append-only file in --dir unless --no-aof: stopping the
    stack and starting it again in the same --dir finds the state again (the broker keeps
    nothing). Running it again while the stack runs prints the same lines and starts nothing.

    With --redis-cluster N the nodes listen on free ports (each with its cluster bus on the
    port + 10000); the exports name the first master and set RFM_REDIS_CLUSTER=true.
    """
    if masters and masters < 3:
        raise click.BadParameter(
            "a Redis Cluster needs at least 3 masters", param_hint="--redis-cluster"
        )
    if replicas and not masters:
        raise click.BadParameter("replicas need --redis-cluster", param_hint="--replicas")
    try:
        current = local_stack.status(directory)
    except StackNotFoundError:
        current = None
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if current is not None and current.up:
        _note(f"stack already running in {directory}")
        click.echo(_exports(current.info))
        return
    # A StackError (no local broker installed, a server that does not start) ends `rfm`
    # with one error line.
    info = local_stack.start(
        directory,
        kafka_port=kafka_port,
        redis_port=redis_port,
        aof=aof,
        timeout=timeout,
        redis_cluster=masters,
        replicas=replicas,
    )
    _note(f"broker  pid {info.kafka.pid:<7} {info.kafka_bootstrap:<28} log {info.kafka.log}")
    for node in info.redis_nodes:
        role = (
            "" if not info.cluster else ("master " if node in info.cluster[:masters] else "replica")
        )
        address = f"127.0.0.1:{node.port} {role}".strip()
        _note(f"redis   pid {node.pid:<7} {address:<28} log {node.log}")
    _note(f"redis   {_persistence(info)}")
    _note(f"stop with: rfm stack down --dir {shlex.quote(str(directory))}")
    click.echo(_exports(info))


@stack.command()
@_DIR_OPTION
@click.option("--timeout", type=float, default=10.0, show_default=True, help="SIGKILL after.")
def down(directory: Path, timeout: float) -> None:
    """Stop exactly the processes `rfm stack up` started in --dir."""
    try:
        info = local_stack.stop(directory, timeout=timeout)
    except StackNotFoundError:
        _note(f"no stack in {directory}: nothing to stop")
        return
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    pids = ", ".join(str(node.pid) for node in info.redis_nodes)
    _note(f"stopped broker (pid {info.kafka.pid}) and redis (pid {pids})")


@stack.command()
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(directory: Path, as_json: bool) -> None:
    """Tell whether the stack in --dir runs; exit 0 when both servers answer, else 1."""
    try:
        current = local_stack.status(directory)
    except StackNotFoundError as exc:
        if as_json:
            click.echo(json.dumps({"up": False, "directory": str(directory)}))
        else:
            _note(str(exc))
        raise SystemExit(1) from exc
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        document = current.info.to_json()
        document["up"] = current.up
        for proc in (current.kafka, current.redis):
            entry = document["processes"][proc.info.name]
            entry.update(running=proc.running, answering=proc.answering)
        for node, entry in zip(current.cluster, document["redis_cluster"], strict=True):
            entry.update(running=node.running, answering=node.answering)
        click.echo(json.dumps(document, indent=2))
    else:
        redis = [(node, f"127.0.0.1:{node.info.port}") for node in current.cluster] or [
            (current.redis, current.info.redis_url)
        ]
        for proc, address in [(current.kafka, current.info.kafka_bootstrap), *redis]:
            state = "down"
            if proc.running:
                state = "up" if proc.answering else "running"  # running: not answering yet
            click.echo(f"{proc.info.name:<6} {state:<8} pid {proc.info.pid:<7} {address}")
        click.echo(f"redis  {_persistence(current.info)}")
    if not current.up:
        raise SystemExit(1)
