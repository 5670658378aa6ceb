"""The AsyncAPI 3.0 document of the service's topics, generated from the event models.

Three channels (orders, segment changes, dead letters), their messages with the models' JSON
Schemas as payloads, the message keys and the Kafka bindings. Topic names, partitions and
the consumer group are the defaults of :class:`~stream_app.settings.Settings`: a deployment
may rename them (each channel says which setting). ``rfm schemas`` writes the document beside
the JSON Schemas.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from stream_app.core.events import ClockEvent, DeadLetter, OrderEvent, SegmentChange
from stream_app.settings import Settings

__all__ = ["ASYNCAPI_FILE", "KAFKA_BINDING_VERSION", "asyncapi_document", "write_asyncapi"]

#: The document's file name in the directory ``rfm schemas`` writes.
ASYNCAPI_FILE = "asyncapi.json"

#: The version of the AsyncAPI Kafka bindings the document uses.
KAFKA_BINDING_VERSION = "0.5.0"

_SCHEMAS = "#/components/schemas/{model}"

_CUSTOMER_KEY = {"type": "string", "description": "The customer_id of the event, as UTF-8"}


def _default(name: str) -> Any:
    """A setting's default (never the environment's value: the document is the same anywhere)."""
    return Settings.model_fields[name].default


def _kafka(**fields: Any) -> dict[str, Any]:
    return {"kafka": {**fields, "bindingVersion": KAFKA_BINDING_VERSION}}


def _message(
    model: type[BaseModel], summary: str, key: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "title": model.__name__,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": _SCHEMAS.format(model=model.__name__)},
        "bindings": _kafka(key=key),
        **extra,
    }


def _channel(setting: str, description: str, messages: dict[str, str]) -> dict[str, Any]:
    topic = _default(setting)
    return {
        "address": topic,
        "title": topic,
        "description": f"{description} The name is set by RFM_{setting.upper()}.",
        "messages": {
            name: {"$ref": f"#/components/messages/{message}"} for name, message in messages.items()
        },
        "bindings": _kafka(topic=topic, partitions=_default("topic_partitions")),
        "x-rfm-setting": f"RFM_{setting.upper()}",
    }


def _operation(
    action: str, channel: str, messages: list[str], summary: str, **kafka: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "summary": summary,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }
    if kafka:
        operation["bindings"] = _kafka(**kafka)
    return operation


def _package_version() -> str:
    try:
        return version("rfm-segments")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0.0.0"


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the orders, segment-changes and dead-letter topics.

    Its operations are the service's: it receives orders and clock events, and sends
    segment changes and dead letters. The message payloads are the models' JSON Schemas
    (the files of ``rfm schemas``), their shared definitions under ``components/schemas``.

    >>> document = asyncapi_document()
    >>> document["asyncapi"], sorted(document["channels"])
    ('3.0.0', ['deadLetters', 'orders', 'segmentChanges'])
    >>> document["channels"]["segmentChanges"]["address"]
    'segment-changes'
    """
    models: list[type[BaseModel]] = [OrderEvent, ClockEvent, SegmentChange, DeadLetter]
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_SCHEMAS
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "rfm-segments",
            "version": _package_version(),
            "description": (
                "Real-time RFM customer segmentation. Order events come in on the orders "
                "topic; a customer who moves to another segment is announced on the "
                "segment-changes topic; an input message that cannot be used goes to the "
                "dead-letter topic. Every message is JSON. Consumers of segment changes keep, "
                "per customer, the change with the highest sequence and drop any change "
                "whose sequence is not above it (repeats after a restart, late ones)."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": _default("kafka_bootstrap"),
                "protocol": "kafka",
                "description": (
                    "The brokers of RFM_KAFKA_BOOTSTRAP (the default shown). TLS and SASL "
                    "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) are set by "
                    "RFM_KAFKA_SECURITY_PROTOCOL and RFM_KAFKA_SASL_* / RFM_KAFKA_SSL_* "
                    "(docs/security.md)."
                ),
            }
        },
        "channels": {
            "orders": _channel(
                "orders_topic",
                "Order events (purchases and returns) keyed by customer, and clock events "
                "that move the event-time clock.",
                {"orderEvent": "OrderEvent", "clockEvent": "ClockEvent"},
            ),
            "segmentChanges": _channel(
                "changes_topic",
                "A customer moved to another segment, keyed by customer. Keep per customer "
                "the highest sequence.",
                {"segmentChange": "SegmentChange"},
            ),
            "deadLetters": _channel(
                "dlq_topic",
                "Input messages the service could not use, with why and where they came from.",
                {"deadLetter": "DeadLetter"},
            ),
        },
        "operations": {
            "receiveOrders": _operation(
                "receive",
                "orders",
                ["orderEvent", "clockEvent"],
                "The workers read the orders topic as one consumer group (RFM_APP_ID).",
                groupId={"type": "string", "enum": [_default("app_id")]},
            ),
            "sendSegmentChanges": _operation(
                "send",
                "segmentChanges",
                ["segmentChange"],
                "A worker announces each change of a customer's segment (at least once).",
            ),
            "sendDeadLetters": _operation(
                "send",
                "deadLetters",
                ["deadLetter"],
                "A worker routes an input message it cannot use here, and goes on.",
            ),
        },
        "components": {
            "messages": {
                "OrderEvent": _message(
                    OrderEvent, "One invoice: a purchase or a return.", _CUSTOMER_KEY
                ),
                "ClockEvent": _message(
                    ClockEvent,
                    "Moves the event-time clock without an order (rfm clock advance), "
                    "published to partition 0.",
                    {"type": "string", "const": "clock"},
                ),
                "SegmentChange": _message(
                    SegmentChange,
                    "A customer moved to another segment.",
                    _CUSTOMER_KEY,
                ),
                "DeadLetter": _message(
                    DeadLetter,
                    "An input message that could not be used.",
                    {
                        "type": "string",
                        "description": "The key of the source message, unchanged; "
                        "absent when it had none",
                    },
                ),
            },
            "schemas": definitions["$defs"],
        },
    }


def write_asyncapi(directory: Path) -> Path:
    """Write :func:`asyncapi_document` as ``asyncapi.json`` into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ASYNCAPI_FILE
    path.write_text(json.dumps(asyncapi_document(), indent=2) + "\n")
    return path
