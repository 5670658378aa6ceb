"""Wire contracts: order events in, segment changes and dead letters out (JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

__all__ = [
    "EARLIEST_EVENT_TIME",
    "LATEST_EVENT_TIME",
    "ClockEvent",
    "DeadLetter",
    "InvalidEvent",
    "OrderEvent",
    "OrderLine",
    "RFMValues",
    "SegmentChange",
    "parse_event",
    "parse_order_event",
    "write_json_schemas",
]

#: Event times outside this range are treated as absurd (a unit mix-up, a zeroed field).
EARLIEST_EVENT_TIME = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def _checked_time(value: datetime) -> datetime:
    """An event time in UTC (naive times are taken as UTC); absurd times are refused."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        raise ValueError(
            f"occurred_at {value.isoformat()} is outside "
            f"{EARLIEST_EVENT_TIME.date()}..{LATEST_EVENT_TIME.date()}"
        )
    return value.astimezone(UTC)


#: The time of an order or clock event, checked by :func:`_checked_time`.
EventTime = Annotated[datetime, AfterValidator(_checked_time)]


# A plain dict once validated: the stream reads hundreds of thousands of lines, and a model
# object per line would cost more than the validation itself.
class OrderLine(TypedDict):
    """One line of an invoice. Quantities are positive for purchases and returns alike."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    description: NotRequired[str | None]
    quantity: Annotated[int, Field(gt=0)]
    # Checked in pydantic's core (no Python call per line): finite and not negative.
    unit_price: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class OrderEvent(BaseModel):
    """One invoice: a purchase or a return, keyed by ``customer_id`` on the orders topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, max_length=128, description="Idempotency key")
    kind: Literal["purchase", "return"]
    order_id: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[^{}\s]+$")
    occurred_at: EventTime
    country: str | None = None
    lines: list[OrderLine] = Field(min_length=1)


class RFMValues(BaseModel):
    """A customer's RFM at one moment."""

    model_config = ConfigDict(frozen=True)

    recency_days: int
    frequency: int
    monetary: float


class SegmentChange(BaseModel):
    """A customer moved to another segment, keyed by ``customer_id``."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    previous_segment: str | None
    segment: str
    reason: Literal["order", "recency", "retrain"]
    rfm: RFMValues
    model_version: str
    occurred_at: datetime
    sequence: int = Field(
        0, description="Per-customer, increasing: keep the highest, drop any not above it"
    )
    previous_rfm: RFMValues | None = Field(
        None, description="The RFM when the previous segment was assigned (null for the first)"
    )
    driver: Literal["recency", "frequency", "monetary", "model"] | None = Field(
        None, description="What moved the customer: an RFM dimension, or a new model"
    )


class ClockEvent(BaseModel):
    """Moves the event-time clock without an order (``rfm clock advance``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["clock"]
    occurred_at: EventTime


class DeadLetter(BaseModel):
    """An input event that could not be used, with why and where it came from."""

    model_config = ConfigDict(frozen=True)

    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    payload: str = Field(
        description="The message value as text (UTF-8, invalid bytes replaced), cut if long"
    )
    failed_at: datetime
    # Dead letters written before these fields existed read with the defaults.
    payload_bytes: int | None = Field(
        None, ge=0, description="Size in bytes of the original message value (null: unknown)"
    )
    payload_sha256: str | None = Field(
        None, description="Hex SHA-256 of the whole original message value (null: unknown)"
    )
    truncated: bool = Field(
        False, description="True when payload holds only the beginning of the message value"
    )


class InvalidEvent(ValueError):
    """An order event that fails validation; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def parse_order_event(payload: bytes | str) -> OrderEvent:
    """Decode and validate one order event.

    Raises
    ------
    InvalidEvent
        Not JSON, or the JSON breaks the schema; the reason names the field.

    Examples
    --------
    >>> parse_order_event('{"event_id": "1", "kind": "purchase", "order_id": "1", '
    ...     '"customer_id": "7", "occurred_at": "2011-01-01T00:00:00Z", '
    ...     '"lines": [{"sku": "A1", "quantity": 2, "unit_price": 1.5}]}').lines[0]["quantity"]
    2
    >>> try:
    ...     parse_order_event(b"not json")
    ... except InvalidEvent as exc:
    ...     print(exc.reason)
    not JSON: expected ident at line 1 column 2
    """
    try:
        return OrderEvent.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from exc


def parse_event(payload: bytes | str) -> OrderEvent | ClockEvent:
    """Decode an order event, or a clock event (``"kind": "clock"``) that only moves time.

    Raises
    ------
    InvalidEvent
        As :func:`parse_order_event`.
    """
    marker = b'"clock"' if isinstance(payload, bytes) else '"clock"'
    if marker in payload:  # type: ignore[operator]
        try:
            return ClockEvent.model_validate_json(payload)
        except ValidationError:
            pass  # not a clock event after all: report it as an order event
    return parse_order_event(payload)


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0] if errors else None
    if first is not None and first["type"] == "json_invalid":
        return "not JSON: " + first["msg"].removeprefix("Invalid JSON: ")
    if first is not None and not first["loc"] and first["type"] in ("model_type", "dict_type"):
        return "not a JSON object"
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(step) for step in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "schema violation: " + "; ".join(parts)


def write_json_schemas(directory: Path) -> list[Path]:
    """Write the JSON Schema of each wire contract into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    models: dict[str, type[BaseModel]] = {
        "order_event": OrderEvent,
        "segment_change": SegmentChange,
        "clock_event": ClockEvent,
        "dead_letter": DeadLetter,
    }
    for name, model in models.items():
        schema: dict[str, Any] = model.model_json_schema()
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
