"""The committed AsyncAPI document is the generated one, and it holds together as AsyncAPI 3.

Not a full AsyncAPI validator (none is kept up on PyPI): the required fields, every ``$ref``
resolving inside the document, operations naming messages of their own channel, and the
payloads being the models' JSON Schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import stream_app.core
from stream_app.core.events import (
    ClockEvent,
    DeadLetter,
    OrderEvent,
    RFMValues,
    SegmentChange,
    write_json_schemas,
)
from stream_app.kafka.asyncapi import (
    ASYNCAPI_FILE,
    KAFKA_BINDING_VERSION,
    asyncapi_document,
    write_asyncapi,
)
from stream_app.settings import Settings

SCHEMA_DIR = Path(stream_app.core.__file__).resolve().parent / "schemas"
COMMITTED = SCHEMA_DIR / ASYNCAPI_FILE


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED.read_text())
    return data


def _refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    """Every ``$ref`` in ``node``: (where it is, what it points at)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only references inside the document are expected"
    node: Any = document
    for step in ref[2:].split("/"):
        step = step.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and step in node, f"{ref} does not resolve"
        node = node[step]
    return node


def test_committed_document_equals_generated(tmp_path: Path) -> None:
    assert COMMITTED.is_file(), f"{COMMITTED} is missing: run `rfm schemas --output {SCHEMA_DIR}`"
    fresh = write_asyncapi(tmp_path)
    # Byte equality, so formatting drift is caught too; the message says how to fix it.
    assert COMMITTED.read_text() == fresh.read_text(), (
        f"{COMMITTED.name} is out of date: regenerate it with "
        "`rfm schemas --output stream_app/core/schemas`"
    )


def test_document_does_not_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFM_CHANGES_TOPIC", "elsewhere")
    monkeypatch.setenv("RFM_KAFKA_BOOTSTRAP", "k9:9092")
    assert asyncapi_document() == json.loads(COMMITTED.read_text())


def test_required_fields(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    for name, server in document["servers"].items():
        assert {"host", "protocol"} <= server.keys(), name
        assert server["protocol"] == "kafka"
    for name, message in document["components"]["messages"].items():
        assert "payload" in message, name
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        assert "channel" in operation, name


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = list(_refs(document))
    assert len(refs) > 10
    for where, ref in refs:
        assert _resolve(document, ref) is not None, f"{where}: {ref}"


def test_operations_send_and_receive_messages_of_their_channel(
    document: dict[str, Any],
) -> None:
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
    actions = {name: op["action"] for name, op in document["operations"].items()}
    assert actions == {
        "receiveOrders": "receive",
        "sendSegmentChanges": "send",
        "sendDeadLetters": "send",
    }


def test_channels_are_the_default_topics_with_kafka_bindings(document: dict[str, Any]) -> None:
    defaults = Settings.model_fields
    channels = document["channels"]
    topics = {name: channel["address"] for name, channel in channels.items()}
    assert topics == {
        "orders": defaults["orders_topic"].default,
        "segmentChanges": defaults["changes_topic"].default,
        "deadLetters": defaults["dlq_topic"].default,
    }
    for channel in channels.values():
        binding = channel["bindings"]["kafka"]
        assert binding["topic"] == channel["address"]
        assert binding["partitions"] == defaults["topic_partitions"].default
        assert binding["bindingVersion"] == KAFKA_BINDING_VERSION
    group = document["operations"]["receiveOrders"]["bindings"]["kafka"]["groupId"]
    assert group["enum"] == [defaults["app_id"].default]
    assert set(channels["orders"]["messages"]) == {"orderEvent", "clockEvent"}


def test_messages_are_keyed(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    for name in ("OrderEvent", "SegmentChange"):
        key = messages[name]["bindings"]["kafka"]["key"]
        assert key["type"] == "string" and "customer_id" in key["description"]
    assert messages["ClockEvent"]["bindings"]["kafka"]["key"]["const"] == "clock"


def _lifted(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JSON Schema file as the document holds it: definitions apart, references moved."""
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    moved: dict[str, Any] = json.loads(text)
    return {k: v for k, v in moved.items() if k != "$defs"}, moved.get("$defs", {})


def test_payloads_are_the_json_schemas_of_the_models(
    document: dict[str, Any], tmp_path: Path
) -> None:
    components = document["components"]["schemas"]
    for path in write_json_schemas(tmp_path):
        top, definitions = _lifted(json.loads(path.read_text()))
        assert components[top["title"]] == top, path.name
        for name, definition in definitions.items():
            assert components[name] == definition, (path.name, name)
    for message in document["components"]["messages"].values():
        payload = _resolve(document, message["payload"]["$ref"])
        jsonschema.Draft7Validator.check_schema(payload)


EXAMPLES = [
    (
        "OrderEvent",
        OrderEvent(
            event_id="536365",
            kind="purchase",
            order_id="536365",
            customer_id="17850",
            occurred_at=datetime(2010, 12, 1, 8, 26, tzinfo=UTC),
            lines=[{"sku": "85123A", "quantity": 6, "unit_price": 2.55}],
        ),
    ),
    ("ClockEvent", ClockEvent(kind="clock", occurred_at=datetime(2012, 6, 1, tzinfo=UTC))),
    (
        "SegmentChange",
        SegmentChange(
            customer_id="17850",
            previous_segment="promising",
            segment="loyal",
            reason="order",
            rfm=RFMValues(recency_days=2, frequency=7, monetary=4310.0),
            model_version="v1",
            occurred_at=datetime(2011, 12, 8, tzinfo=UTC),
            sequence=4,
            previous_rfm=RFMValues(recency_days=40, frequency=6, monetary=3800.0),
            driver="frequency",
        ),
    ),
    (
        "DeadLetter",
        DeadLetter(
            reason="not JSON",
            topic="orders",
            partition=0,
            offset=7,
            key=None,
            payload="{",
            failed_at=datetime(2011, 1, 1, tzinfo=UTC),
        ),
    ),
]


@pytest.mark.parametrize(("name", "event"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_published_messages_fit_their_payload(
    document: dict[str, Any], name: str, event: Any
) -> None:
    # The payload's references resolve against the whole document, as an AsyncAPI tool does.
    message = document["components"]["messages"][name]
    schema = {**message["payload"], "components": document["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    published = json.loads(event.model_dump_json())
    assert list(validator.iter_errors(published)) == []
    missing = document["components"]["schemas"][name]["required"][0]
    broken = {key: value for key, value in published.items() if key != missing}
    assert list(validator.iter_errors(broken)), f"{name} without {missing} must break the payload"
