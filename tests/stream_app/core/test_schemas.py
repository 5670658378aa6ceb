"""The committed JSON Schemas are the ones the models generate, and the documented event fits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import stream_app.core
from stream_app.core.events import OrderEvent, parse_order_event, write_json_schemas

SCHEMA_DIR = Path(stream_app.core.__file__).resolve().parent / "schemas"
SCHEMA_NAMES = ("order_event", "segment_change", "clock_event", "dead_letter")
#: The AsyncAPI document of the topics, written beside the schemas (tests/stream_app/kafka).
OTHER_FILES = ("asyncapi.json",)

#: The order event of docs/design.md ("Events"), verbatim.
DESIGN_EVENT: dict[str, Any] = {
    "event_id": "536365",
    "kind": "purchase",
    "order_id": "536365",
    "customer_id": "17850",
    "occurred_at": "2010-12-01T08:26:00+00:00",
    "country": "United Kingdom",
    "lines": [
        {
            "sku": "85123A",
            "description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "quantity": 6,
            "unit_price": 2.55,
        }
    ],
}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_committed_schema_equals_generated(name: str, tmp_path: Path) -> None:
    committed = SCHEMA_DIR / f"{name}.schema.json"
    assert committed.is_file(), f"{committed} is missing: run `rfm schemas --output {SCHEMA_DIR}`"
    generated = {path.name: path for path in write_json_schemas(tmp_path)}
    fresh = generated[f"{name}.schema.json"]
    # Byte equality, so formatting drift is caught too; the message says how to fix it.
    assert committed.read_text() == fresh.read_text(), (
        f"{committed.name} is out of date: regenerate it with "
        f"stream_app.core.events.write_json_schemas(Path('stream_app/core/schemas'))"
    )


def test_schema_directory_holds_exactly_the_contracts() -> None:
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == sorted(
        [f"{name}.schema.json" for name in SCHEMA_NAMES] + list(OTHER_FILES)
    )


def test_order_event_schema_names_the_required_fields() -> None:
    schema = _load(SCHEMA_DIR / "order_event.schema.json")
    assert set(schema["required"]) == {
        "event_id",
        "kind",
        "order_id",
        "customer_id",
        "occurred_at",
        "lines",
    }
    assert schema["properties"]["kind"]["enum"] == ["purchase", "return"]


def test_design_event_validates_with_pydantic() -> None:
    event = parse_order_event(json.dumps(DESIGN_EVENT))
    assert isinstance(event, OrderEvent)
    assert event.customer_id == "17850"
    assert event.lines[0]["quantity"] == 6


def test_design_event_validates_with_jsonschema() -> None:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed in this environment"
    )
    schema = _load(SCHEMA_DIR / "order_event.schema.json")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    assert list(validator.iter_errors(DESIGN_EVENT)) == []

    broken = {**DESIGN_EVENT, "lines": [{**DESIGN_EVENT["lines"][0], "quantity": 0}]}
    assert list(validator.iter_errors(broken)), "quantity 0 must break the schema"
    missing = {key: value for key, value in DESIGN_EVENT.items() if key != "customer_id"}
    assert list(validator.iter_errors(missing)), "a missing customer_id must break the schema"
