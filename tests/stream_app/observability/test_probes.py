"""The readiness rule of ``GET /ready``."""

from __future__ import annotations

import pytest

from stream_app.observability.probes import readiness

READY = {"started": True, "partitions": 2, "redis_problem": None, "model_known": True}


def test_a_started_worker_with_partitions_redis_and_a_known_model_is_ready() -> None:
    answer = readiness(**READY)  # type: ignore[arg-type]
    assert (answer.ready, answer.status, answer.body()) == (True, 200, {"ready": True})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"started": False}, "starting up"),
        ({"partitions": 0}, "no partition"),
        ({"redis_problem": "Timeout"}, "Redis does not answer: Timeout"),
        ({"model_known": False, "model_problem": "bad pickle"}, "model state is not known"),
    ],
)
def test_each_missing_fact_makes_it_unready_and_says_why(
    change: dict[str, object], reason: str
) -> None:
    answer = readiness(**{**READY, **change})  # type: ignore[arg-type]
    assert answer.status == 503
    assert answer.body()["ready"] is False
    assert reason in str(answer.body()["reason"])
