"""Read a file of dead letters or fixed order events back into orders: ``rfm dlq resubmit``.

Each line of the file is either a dead-letter record (as ``rfm dlq export`` writes it; its
``payload`` is the event text) or a bare order event object (an event a person fixed). Every
line is validated as the worker validates a message (schema, then product rule and sanity
bounds at the wall clock), so an event resubmitted is one the worker applies; resubmitting is
all or nothing. The event id keeps an order applied once: an event already applied counts as
a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from model_training.data.rules import ProductRule
from stream_app.core.effects import order_effect
from stream_app.core.events import ClockEvent, DeadLetter, InvalidEvent, parse_event
from stream_app.core.limits import Limits

__all__ = ["Resubmission", "ResubmittedEvent", "read_resubmission"]


@dataclass(frozen=True, slots=True)
class ResubmittedEvent:
    """An order event ready to publish: keyed by its customer, its text as validated."""

    line: int
    event_id: str
    key: bytes
    value: bytes


@dataclass
class Resubmission:
    """What a file holds: the events to publish, and the lines that cannot be (line, why)."""

    events: list[ResubmittedEvent] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


def _event_text(line: str) -> str:
    """The event text of one line: a dead letter's payload, or the line itself."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "payload" not in record:
        return line  # an order event, or what the worker would refuse with its own reason
    try:
        letter = DeadLetter.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidEvent(f"not a dead letter: {where}: {first['msg']}") from exc
    if letter.truncated:
        kept = len(letter.payload.encode())
        raise InvalidEvent(
            f"the dead letter of {letter.topic}/{letter.partition}/{letter.offset} keeps only "
            f"{kept} of {letter.payload_bytes} bytes of its message: put the whole fixed "
            f"event on this line instead"
        )
    return letter.payload


def read_resubmission(
    lines: Iterable[str], rule: ProductRule, limits: Limits, wall_now: float
) -> Resubmission:
    """Validate the lines of a resubmission file (blank lines are skipped).

    Parameters
    ----------
    lines
        The file's lines.
    rule, limits
        The worker's product rule and sanity bounds (from the settings).
    wall_now
        The wall clock (epoch seconds) that event times are judged by.

    Examples
    --------
    >>> from model_training.data.rules import DEFAULT_RULE
    >>> good = ('{"event_id": "9", "kind": "purchase", "order_id": "9", "customer_id": "7",'
    ...         ' "occurred_at": "2011-01-01T00:00:00Z",'
    ...         ' "lines": [{"sku": "A1", "quantity": 2, "unit_price": 1.5}]}')
    >>> result = read_resubmission([good, "", good.replace('"quantity": 2', '"quantity": -2')],
    ...                            DEFAULT_RULE, Limits(), wall_now=1.7e9)
    >>> [(e.line, e.key) for e in result.events], [line for line, _ in result.problems]
    ([(1, b'7')], [3])
    """
    result = Resubmission()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            text = _event_text(line)
            value = text.encode()
            event = parse_event(value)
            if isinstance(event, ClockEvent):
                raise InvalidEvent(
                    "a clock event: resubmit is for orders (move the clock with rfm clock)"
                )
            order_effect(event, rule, limits, wall_now=wall_now)
        except InvalidEvent as exc:
            result.problems.append((number, exc.reason))
            continue
        result.events.append(
            ResubmittedEvent(number, event.event_id, event.customer_id.encode(), value)
        )
    return result
