"""``rfm models ...`` and ``rfm retrain``: look at and steer the shared model registry.

The registry root is ``RFM_MODEL_DIR``, the pointer lives in the Redis of ``RFM_REDIS_URL``
under ``RFM_KEY_PREFIX`` (see :mod:`stream_app.store.registry`), and so do the retrain request
and the last attempt (:mod:`stream_app.store.coordination`). The commands are synchronous and
run the async library code with :func:`asyncio.run`. Failures are the project's errors, so
``rfm`` ends them with one ``error:`` line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import pandas as pd
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stream_app.cli.base import current_settings
from stream_app.exceptions import ModelUnavailableError, StoreAccessError, StoreUnavailableError
from stream_app.settings import Settings
from stream_app.store.client import access_problem, configured_client, redacted_url
from stream_app.store.coordination import Coordination
from stream_app.store.keys import keys_for
from stream_app.store.registry import ModelRegistry

__all__ = ["models", "retrain_command"]

T = TypeVar("T")


@asynccontextmanager
async def _connected(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client of ``RFM_REDIS_URL`` that has answered a PING; closed at exit."""
    client = configured_client(settings)
    try:
        try:
            await client.ping()
        except RedisError as exc:
            problem = access_problem(exc)
            if problem is not None:
                raise StoreAccessError(problem) from exc
            raise StoreUnavailableError(
                f"cannot reach Redis at {redacted_url(settings.redis_url)} ({exc}); "
                "check RFM_REDIS_URL"
            ) from exc
        yield client
    finally:
        await client.aclose()


def _run(work: Callable[[ModelRegistry, Coordination], Awaitable[T]]) -> T:
    """Run ``work`` with the registry and the coordination keys of the configured deployment."""
    settings = current_settings()

    async def run() -> T:
        async with _connected(settings) as client:
            keys = keys_for(settings)
            registry = ModelRegistry(settings.model_dir, client, keys)
            return await work(registry, Coordination(client, keys))

    return asyncio.run(run())


def _fmt(value: object, spec: str = ".3f") -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


@click.group("models")
def models() -> None:
    """Model versions shared by every worker (registry in RFM_MODEL_DIR, pointer in Redis)."""


@models.command("list")
def list_versions() -> None:
    """List the stored versions; '*' marks the one the workers serve."""
    rows = _run(lambda registry, _: registry.versions())
    if not rows:
        click.echo("no model versions yet: `rfm models import DIR` or wait for a retrain")
        return
    table = pd.DataFrame(
        {
            "": ["*" if row["current"] else "" for row in rows],
            "version": [row["version"] for row in rows],
            "trained_at": [_fmt(row["trained_at"]) for row in rows],
            "from": [_fmt(row["trained_from"]) for row in rows],
            "method": [_fmt(row["method"]) for row in rows],
            "k": [_fmt(row["n_segments"], "d") for row in rows],
            "silhouette": [_fmt(row["silhouette"]) for row in rows],
            "problem": [row["error"] or "" for row in rows],
        }
    )
    click.echo(table.to_string(index=False))


@models.command("show")
@click.argument("version", required=False)
def show(version: str | None) -> None:
    """Describe one version (default: the current one): segments, gates, migration."""

    async def work(
        registry: ModelRegistry, _: Coordination
    ) -> tuple[str, dict[str, Any], str | None]:
        chosen = version or await registry.current_version()
        if chosen is None:
            raise ModelUnavailableError(
                "no current model version; `rfm models import DIR` registers one"
            )
        return chosen, await registry.card(chosen), await registry.current_version()

    chosen, card, current = _run(work)
    click.echo(_describe(chosen, card, chosen == current))


def _describe(version: str, card: dict[str, Any], current: bool) -> str:
    lines = [
        f"version     {version}{'  (current)' if current else ''}",
        f"trained     {card.get('trained_at', '-')} from {card.get('trained_from', 'batch')}, "
        f"t_ref {card.get('t_ref', '-')}, {card.get('n_customers', '-')} customers",
        f"method      {card.get('method', '-')}  k={card.get('n_segments', '-')}  "
        f"silhouette={_fmt(card.get('silhouette'))}",
    ]
    segments = pd.DataFrame(card.get("segments", []))
    if not segments.empty:
        shown = segments.reindex(
            columns=["name", "size", "share", "recency_days", "frequency", "monetary", "action"]
        )
        lines += ["", "segments", shown.to_string(index=False, float_format=lambda v: f"{v:.2f}")]
    gates = card.get("gates")
    if isinstance(gates, dict):
        verdict = "passed" if gates.get("passed") else "failed: " + "; ".join(gates["reasons"])
        lines += [
            "",
            f"gates       {verdict}",
            f"  silhouette {_fmt(gates.get('silhouette'))} (min {gates.get('min_silhouette')}), "
            f"smallest segment {gates.get('smallest_segment')} "
            f"{_fmt(gates.get('smallest_segment_share'), '.2%')} "
            f"(min {_fmt(gates.get('min_segment_share'), '.2%')}), "
            f"changed {_fmt(gates.get('changed_share'), '.2%')} "
            f"(max {_fmt(gates.get('max_changed_share'), '.2%')})",
        ]
    migration = card.get("migration")
    if isinstance(migration, dict):
        matrix = pd.DataFrame(migration.get("matrix", {})).T.fillna(0).astype(int)
        lines += [
            "",
            f"migration   from {migration.get('from_version')}: {migration.get('changed')} "
            f"customers change segment ({_fmt(migration.get('changed_share'), '.2%')}); "
            "rows: previous segment, columns: new segment",
            matrix.to_string(),
        ]
    return "\n".join(lines)


@models.command("promote")
@click.argument("version")
def promote(version: str) -> None:
    """Make VERSION the model every worker serves (it must load)."""
    before = _run(lambda registry, _: registry.promote(version))
    click.echo(f"serving {version} (was {before or 'none'})")


@models.command("rollback")
def rollback() -> None:
    """Serve the version served before the current one again."""

    async def work(registry: ModelRegistry, _: Coordination) -> tuple[str | None, str]:
        return await registry.current_version(), await registry.rollback()

    current, version = _run(work)
    click.echo(f"serving {version} (was {current})")


@models.command("import")
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
def import_model(directory: Path) -> None:
    """Register a model written by `rfm train` (current only if there is none yet)."""

    async def work(registry: ModelRegistry, _: Coordination) -> tuple[str, str | None]:
        return await registry.import_dir(directory), await registry.current_version()

    version, current = _run(work)
    state = "current" if current == version else f"not current (serving {current})"
    click.echo(f"registered {version}: {state}")


@click.command("retrain")
def retrain_command() -> None:
    """Ask the workers to retrain from the live state now; show the last attempt."""

    async def work(_: ModelRegistry, coordination: Coordination) -> dict[str, Any]:
        await coordination.request_retrain()
        return await coordination.last_attempt()

    last = _run(work)
    click.echo("retrain requested: the next worker to check will retrain")
    if last:
        verdict = "accepted" if last.get("accepted") else "rejected"
        reasons = last.get("reasons") or []
        detail = f": {'; '.join(map(str, reasons))}" if reasons else ""
        click.echo(
            f"last attempt {last.get('time', '-')}: {verdict}, version "
            f"{last.get('version') or '-'}{detail}"
        )
        extra = {k: v for k, v in last.items() if k not in {"time", "accepted", "reasons"}}
        extra.pop("version", None)
        if extra:
            click.echo(f"  {json.dumps(extra, default=str)}")
