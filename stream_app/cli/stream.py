"""``rfm`` subcommands of the stream: worker, replay, bootstrap, and reading the state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from model_training.exceptions import ModelArtifactError
from model_training.model.naming import label_for
from stream_app.cli.base import current_settings
from stream_app.core.events import SegmentChange, write_json_schemas
from stream_app.core.history import segment_as_of
from stream_app.core.scoring import SegmentModel
from stream_app.exceptions import ReferenceTimeError
from stream_app.kafka.asyncapi import write_asyncapi
from stream_app.service.export import export_frame, segment_counts, write_export
from stream_app.service.model_source import load_serving_model
from stream_app.settings import Clock, Settings
from stream_app.store.client import configured_client
from stream_app.store.keys import keys_for
from stream_app.store.redis_store import RedisStore
from stream_app.store.registry import ModelRegistry

__all__ = [
    "bootstrap",
    "clock",
    "customer",
    "demo",
    "export",
    "replay",
    "schemas",
    "segments",
    "watch",
    "worker",
]

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[RedisStore], Awaitable[T]]) -> T:
    async def run() -> T:
        async with RedisStore.from_settings(settings) as store:
            await store.ping()
            return await work(store)

    return asyncio.run(run())


async def _stream_now(settings: Settings, store: RedisStore) -> float | None:
    """Now on the configured clock, as the workers see it (None before any event)."""
    return time.time() if settings.clock is Clock.WALL else await store.clock()


def _parse_time(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date like 2011-12-10") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None).isoformat()


def _format_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M")


async def _serving_model(settings: Settings) -> SegmentModel | None:
    """The model the workers serve (the registry's current version), else RFM_MODEL_DIR's."""
    client = configured_client(settings)
    try:
        registry = ModelRegistry(settings.model_dir, client, keys_for(settings))
        return await load_serving_model(registry, settings.model_dir)
    except ModelArtifactError as exc:
        click.echo(f"warning: {exc}", err=True)
        return None
    finally:
        await client.aclose()


@click.command()
@click.option("--loglevel", default="info", show_default=True)
def worker(loglevel: str) -> None:
    """Run a stream worker (configured by the RFM_* environment variables)."""
    from stream_app.kafka.worker import run_worker

    run_worker(current_settings(), loglevel=loglevel)


@click.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--rate", type=float, default=None, help="Events per second (default: as fast as possible)."
)
@click.option(
    "--wait/--no-wait", default=False, help="Return once the workers processed everything."
)
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds --wait waits."
)
@click.option("--shuffle-seed", type=int, default=None, help="Publish in a random order (testing).")
def replay(
    input_path: Path, rate: float | None, wait: bool, timeout: float, shuffle_seed: int | None
) -> None:
    """Publish an Online Retail file as order events, one per invoice."""
    from stream_app.kafka.replay import publish_events, wait_until_processed
    from stream_app.service.order_events import plan_replay

    settings = current_settings()
    click.echo(f"reading {input_path} ...", err=True)
    plan = plan_replay(input_path, shuffle_seed=shuffle_seed)
    dropped = ", ".join(
        f"{name} {count:,}" for name, count in plan.counts.items() if name != "events"
    )
    click.echo(f"{len(plan.events):,} events to publish (dropped rows: {dropped})", err=True)
    started = time.monotonic()
    with click.progressbar(length=len(plan.events), label="publishing", file=None) as bar:
        targets = asyncio.run(
            publish_events(settings, plan.events, rate=rate, on_progress=bar.update)
        )
    click.echo(
        f"published {len(plan.events):,} events in {time.monotonic() - started:.1f}s", err=True
    )
    if wait:
        waited = asyncio.run(wait_until_processed(settings, targets, timeout_s=timeout))
        click.echo(
            f"the workers processed everything {waited:.1f}s after the last publish "
            f"({time.monotonic() - started:.1f}s in all)",
            err=True,
        )


@click.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--score/--no-score",
    default=False,
    show_default=True,
    help="Then score every customer with the serving model and publish their segments "
    "(reason `order`; needs the broker).",
)
def bootstrap(input_path: Path, score: bool) -> None:
    """Load a history file straight into Redis, as replaying it would leave the state.

    Also the way back after a lost store: workers wait for it, then go on.
    """
    from stream_app.service.bootstrap import load_history

    settings = current_settings()
    started = time.monotonic()
    model = asyncio.run(_serving_model(settings)) if score else None
    if score and model is None:
        click.echo("warning: no model: customers get no segment until it is there", err=True)

    async def work(store: RedisStore) -> int:
        with click.progressbar(length=0, label="writing customers", file=None) as bar:

            def progress(count: int) -> None:
                bar.length = max(bar.length or 0, bar.pos + count)
                bar.update(count)

            columns = await load_history(
                store, input_path, on_progress=progress, rule=settings.product_rule
            )
        if model is not None:
            from stream_app.kafka.rescore import rescore_everyone

            moved = await rescore_everyone(settings, store, model, "order")
            click.echo(f"scored every customer: {moved:,} got a new segment", err=True)
        return len(columns)

    count = _with_store(settings, work)
    click.echo(f"loaded {count:,} customers in {time.monotonic() - started:.1f}s", err=True)


@click.command()
@click.argument("customer_id")
@click.option("--history", is_flag=True, help="Also show the recent segment changes.")
@click.option("--as-of", "as_of", default=None, help="Also show the segment at this past date.")
def customer(customer_id: str, history: bool, as_of: str | None) -> None:
    """Show one customer's RFM, segment and last order."""
    settings = current_settings()

    async def work(store: RedisStore) -> None:
        state = await store.get(customer_id)
        if state is None:
            raise click.ClickException(f"no customer {customer_id!r} in the state")
        now = await _stream_now(settings, store)
        click.echo(f"customer      {state.customer_id}")
        if state.has_rfm and now is not None:
            recency, frequency, monetary = state.rfm(now)
            click.echo(f"recency       {recency} days (at {_format_time(now)})")
            click.echo(f"frequency     {frequency} orders")
            click.echo(f"monetary      {monetary:,.2f}")
        else:
            click.echo("rfm           none (no valid purchase yet)")
        click.echo(
            f"segment       {state.segment or '-'} since {_format_time(state.segment_since)}"
        )
        click.echo(f"model         {state.model_version or '-'}")
        click.echo(
            f"last order    {state.last_order or '-'} at {_format_time(state.last_purchase)}"
        )
        click.echo(f"first order   {_format_time(state.first_purchase)}")
        click.echo(f"country       {state.country or '-'}")
        entries = [SegmentChange.model_validate_json(e) for e in await store.history(customer_id)]
        if as_of is not None:
            moment = datetime.fromtimestamp(_parse_time(as_of), tz=UTC)
            past = segment_as_of(entries, moment)
            click.echo(f"as of {moment:%Y-%m-%d %H:%M}  {past or 'no segment yet'}")
        if history:
            click.echo("history (newest first):")
            for change in entries:
                click.echo(f"  {_describe(change)}")

    _with_store(settings, work)


@click.command()
def segments() -> None:
    """Count the customers in each segment (by its human label)."""
    counts = _with_store(current_settings(), segment_counts)
    total = sum(counts.values())
    click.echo(f"{'segment':<20} {'customers':>10} {'share':>7}")
    for name, count in counts.most_common():
        click.echo(f"{label_for(name):<20} {count:>10,} {count / total:>7.1%}")
    click.echo(f"{'total':<20} {total:>10,}")


@click.command()
@click.option("--output", required=True, type=click.Path(path_type=Path))
@click.option(
    "--t-ref",
    "t_ref",
    default=None,
    help="Reference time, not before the stream clock (default: the stream clock).",
)
def export(output: Path, t_ref: str | None) -> None:
    """Write the current state in the rfm.csv format of `rfm train`."""
    settings = current_settings()
    reference = _parse_time(t_ref) if t_ref else None
    model = asyncio.run(_serving_model(settings))

    async def work(store: RedisStore) -> int:
        now = await _stream_now(settings, store)
        if reference is not None and now is not None and reference < now:
            # Recency would go negative, and later orders would still count.
            raise ReferenceTimeError(
                f"--t-ref {_iso(reference)} is before the stream clock ({_iso(now)}, "
                f"{settings.clock.value} time): the state holds the orders applied until then "
                "and cannot leave out those after --t-ref; export at the stream clock or "
                "later, or compute the RFM as of that time from the history file with "
                "`rfm train --t-ref`"
            )
        at = reference if reference is not None else now
        if at is None:
            raise click.ClickException("the state is empty: nothing to export")
        frame = await export_frame(store, at, model)
        write_export(frame, output)
        return len(frame)

    count = _with_store(settings, work)
    click.echo(f"wrote {count:,} customers to {output}", err=True)


def _describe(change: SegmentChange) -> str:
    rfm = change.rfm
    return (
        f"{change.occurred_at:%Y-%m-%d %H:%M}  {change.customer_id:<8} "
        f"{change.previous_segment or '(new)'} -> {change.segment}  [{change.reason}] "
        f"R={rfm.recency_days}d F={rfm.frequency} M={rfm.monetary:,.2f}  #{change.sequence}"
        + (f" (driver: {change.driver})" if change.driver else "")
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print each change as JSON.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest change kept.")
@click.option("--max", "limit", type=int, default=None, help="Stop after this many changes.")
@click.option(
    "--idle-timeout", type=float, default=None, help="Stop after this many quiet seconds."
)
def watch(
    as_json: bool, from_beginning: bool, limit: int | None, idle_timeout: float | None
) -> None:
    """Follow segment changes, one line each."""
    from stream_app.kafka.watch import follow_changes

    def show(change: SegmentChange) -> None:
        click.echo(change.model_dump_json() if as_json else _describe(change))

    asyncio.run(
        follow_changes(
            current_settings(),
            show,
            from_beginning=from_beginning,
            limit=limit,
            idle_timeout_s=idle_timeout,
        )
    )


@click.command()
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("schemas"), show_default=True
)
def schemas(output: Path) -> None:
    """Write the JSON Schemas of the events and the AsyncAPI document of the topics."""
    for path in [*write_json_schemas(output), write_asyncapi(output)]:
        click.echo(str(path))


@click.command()
@click.option(
    "--output", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True
)
@click.option("--customers", type=int, default=2000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(output: Path, customers: int, seed: int) -> None:
    """Run the whole story end to end on synthetic data (local broker and Redis, no Docker)."""
    from stream_app.devtools.demo import run_demo

    if not run_demo(output, customers, seed, click.echo):
        raise SystemExit(1)


@click.group()
def clock() -> None:
    """The stream clock (event time): show it, move it forward without orders, or set it."""


@clock.command("show")
def clock_show() -> None:
    """Print the stream clock and how many customers are due to change segment by then."""
    settings = current_settings()

    async def work(store: RedisStore) -> None:
        now = await _stream_now(settings, store)
        click.echo(f"clock       {_format_time(now)} ({settings.clock.value} time)")
        click.echo(f"scheduled   {await store.due_count():,} customers")
        if now is not None:
            click.echo(f"due now     {await store.due_count(now):,} customers")

    _with_store(settings, work)


@clock.command("set")
@click.option("--to", "to", required=True, help="ISO date the clock is set to, e.g. 2011-12-10.")
def clock_set(to: str) -> None:
    """Set the event-time clock back or forward, and re-score every customer at it.

    For repairs: a clock moved too far (by a clock event, or by orders dated ahead) comes
    back, and every segment follows. Orders applied meanwhile stay applied.
    """
    from stream_app.kafka.clock_events import set_clock

    settings = current_settings()
    if settings.clock is Clock.WALL:
        raise click.UsageError("RFM_CLOCK=wall: the clock is the machine's, there is none to set")
    moment = datetime.fromtimestamp(_parse_time(to), tz=UTC)
    model = asyncio.run(_serving_model(settings))
    if model is None:
        click.echo("warning: no model: the clock is set, nobody is re-scored", err=True)
    changed = asyncio.run(set_clock(settings, moment, model))
    click.echo(
        f"the clock is {moment.isoformat()}; {changed:,} customer(s) changed segment", err=True
    )


@clock.command("advance")
@click.option("--to", "to", required=True, help="ISO date the clock moves to, e.g. 2012-06-01.")
def clock_advance(to: str) -> None:
    """Publish a clock event: workers move the event-time clock and re-score due customers."""
    from stream_app.kafka.clock_events import publish_clock_event

    settings = current_settings()
    moment = datetime.fromtimestamp(_parse_time(to), tz=UTC)
    if problem := settings.limits.time_problem(moment.timestamp(), time.time()):
        raise click.UsageError(f"{problem}: workers would refuse it (RFM_MAX_EVENT_AHEAD_S)")
    asyncio.run(publish_clock_event(settings, moment))
    click.echo(f"published a clock event for {moment.isoformat()}", err=True)
