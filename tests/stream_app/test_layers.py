"""The layers import one way: core <- service <- adapters (store, kafka) <- api <- cli; devtools
apart.

``observability`` (the Prometheus metrics and the readiness rule) sits beside the service
layer: it may import prometheus-client, which nothing below it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stream_app

PACKAGE = Path(stream_app.__file__).resolve().parent

#: What each layer must not import (module prefixes).
FORBIDDEN = {
    "core": (
        "stream_app.service",
        "stream_app.store",
        "stream_app.kafka",
        "stream_app.cli",
        "stream_app.devtools",
        "faust",
        "aiokafka",
        "redis",
        "joblib",
        "prometheus_client",
    ),
    "service": (
        "stream_app.store",
        "stream_app.kafka",
        "stream_app.cli",
        "stream_app.devtools",
        "faust",
        "aiokafka",
        "redis",
        "prometheus_client",
    ),
    "observability": (
        "stream_app.service",
        "stream_app.store",
        "stream_app.kafka",
        "stream_app.cli",
        "stream_app.devtools",
        "faust",
        "aiokafka",
        "redis",
    ),
    "store": (
        "stream_app.kafka",
        "stream_app.cli",
        "stream_app.devtools",
        "stream_app.api",
        "faust",
        "aiokafka",
        "fastapi",
    ),
    "kafka": ("stream_app.cli", "stream_app.devtools", "fastapi", "starlette", "uvicorn"),
    # The HTTP API reads through the store and kafka adapters; nothing below imports it.
    "api": ("stream_app.cli", "stream_app.devtools", "faust"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    modules = sorted((PACKAGE / layer).rglob("*.py"))
    assert modules
    breaches = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules
        for name in sorted(imported(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    ]
    assert not breaches, breaches


def test_the_runtime_never_imports_the_developer_tooling() -> None:
    runtime = [
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ("devtools", "cli")
    ]
    assert not [
        path for path in runtime if any(n.startswith("stream_app.devtools") for n in imported(path))
    ]
