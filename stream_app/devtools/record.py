"""What a started local stack is, as recorded in ``DIR/stack.json``.

The file names the stack's two processes (pids, start times, ports, logs) and how to reach
them, so that another process (``rfm stack status``, ``rfm stack down``) can find and stop
exactly those processes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_app.devtools.processes import ProcessInfo
from stream_app.devtools.servers import kafka_bootstrap, redis_url
from stream_app.exceptions import StackError, StackNotFoundError
from stream_app.settings import Settings

__all__ = ["DEFAULT_DIR", "STATE_FILE", "StackInfo"]

DEFAULT_DIR = Path(".rfm-stack")
STATE_FILE = "stack.json"

_FORMAT = 1  # version of stack.json's layout


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
        The Redis server; of a Redis Cluster, its first master.
    aof
        Whether Redis keeps an append-only file in ``directory`` (None: not recorded, a
        ``stack.json`` written by an older release).
    cluster
        Every node of a Redis Cluster (masters first, then replicas); empty for one Redis.
    replicas
        Replicas per master of the Redis Cluster.
    """

    directory: Path
    kafka: ProcessInfo
    redis: ProcessInfo
    aof: bool | None = None
    cluster: tuple[ProcessInfo, ...] = ()
    replicas: int = 0

    @property
    def redis_nodes(self) -> tuple[ProcessInfo, ...]:
        """Every Redis process: the cluster's nodes, or the one server."""
        return self.cluster or (self.redis,)

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers, as ``RFM_KAFKA_BOOTSTRAP`` takes them."""
        return kafka_bootstrap(self.kafka.port)

    @property
    def redis_url(self) -> str:
        """Redis DSN (database 0), as ``RFM_REDIS_URL`` takes it; of a cluster, every
        master's, comma-separated (a client starts if one of them is down)."""
        masters = self.cluster[: len(self.cluster) // (1 + self.replicas)] or (self.redis,)
        return ",".join(redis_url(node.port) for node in masters)

    def env(self) -> dict[str, str]:
        """Return the ``RFM_*`` variables that point the service at this stack."""
        env = {
            _env_name("kafka_bootstrap"): self.kafka_bootstrap,
            _env_name("redis_url"): self.redis_url,
        }
        if self.cluster:
            env[_env_name("redis_cluster")] = "true"
        return env

    def settings(self, **overrides: Any) -> Settings:
        """Return :class:`Settings` pointing at this stack (other fields from ``overrides``)."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.kafka_bootstrap,
            "redis_url": self.redis_url,
            "redis_cluster": bool(self.cluster),
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
            "redis_aof": self.aof,
            "processes": {"kafka": self.kafka.to_json(), "redis": self.redis.to_json()},
            "redis_cluster": [node.to_json() for node in self.cluster],
            "redis_replicas": self.replicas,
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
                aof=None if data.get("redis_aof") is None else bool(data["redis_aof"]),
                cluster=tuple(
                    ProcessInfo.from_json(node) for node in data.get("redis_cluster", [])
                ),
                replicas=int(data.get("redis_replicas", 0)),
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
