"""The Profile API against a real Redis (the store's scripts), through httpx's ASGI transport."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from stream_app.api import create_app
from stream_app.devtools.network import free_port
from stream_app.service.ports import SegmentUpdate
from stream_app.settings import Settings
from stream_app.store.redis_store import RedisStore
from tests.fakes import purchase_effect

DAY = 86_400.0


def at(day: int) -> float:
    return datetime(2011, 3, day, 12, tzinfo=UTC).timestamp()


def change(customer: str, segment: str, previous: str | None, sequence: int, day: int) -> str:
    return (
        f'{{"customer_id": "{customer}", "previous_segment": '
        f"{'null' if previous is None else f'{chr(34)}{previous}{chr(34)}'}, "
        f'"segment": "{segment}", "reason": "order", "rfm": {{"recency_days": 0, '
        f'"frequency": 1, "monetary": 1.0}}, "model_version": "v1", '
        f'"occurred_at": "{datetime.fromtimestamp(at(day), UTC).isoformat()}", '
        f'"sequence": {sequence}}}'
    )


async def fill(settings: Settings) -> None:
    """Ten customers: c0..c5 `new`, c6..c9 `champions` (moved there on day 3)."""
    async with RedisStore.from_settings(settings) as store:
        await store.segment_counts()
        effects = [
            purchase_effect(f"e{n}", at(1 + n % 3), ("A", n + 1, 10.0), customer=f"c{n}")
            for n in range(10)
        ]
        await store.apply(effects, clock_time=at(5))
        await store.record_each(
            [
                SegmentUpdate(
                    f"c{n}", "new", None, at(1), "v1", 1, change(f"c{n}", "new", None, 1, 1)
                )
                for n in range(10)
            ]
        )
        await store.record_each(
            [
                SegmentUpdate(
                    f"c{n}", "champions", "new", at(3), "v1", 2,
                    change(f"c{n}", "champions", "new", 2, 3),
                )
                for n in range(6, 10)
            ]
        )  # fmt: skip


@pytest.fixture
def settings(private_redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=private_redis_url,
        key_prefix=f"t{uuid.uuid4().hex[:8]}",
        model_dir=tmp_path / "model",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app``, in process, its lifespan run around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await fill(settings)
    async with serving(create_app(settings)) as client:
        yield client


async def test_a_customer_profile(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/customers/c7")).json()
    assert body["segment"] == "champions"
    assert body["label"] and body["action"]
    assert (body["frequency"], body["monetary"], body["country"]) == (1, 80.0, "UK")
    assert body["recency_days"] == 3  # bought on day 2, clock on day 5
    assert body["clock"].startswith("2011-03-05")
    assert body["segment_since"].startswith("2011-03-03")
    past = (await api.get("/v1/customers/c7", params={"as_of": "2011-03-02"})).json()
    assert past["segment"] == "new"
    assert past["as_of"].startswith("2011-03-02T23:59:59")


async def test_errors_are_problem_details(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/customers/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert set(missing.json()) == {"type", "title", "status", "detail"}
    assert (await api.get("/v1/customers/c1", params={"as_of": "soon"})).status_code == 422
    assert (await api.get("/v1/customers/c1/history", params={"limit": 0})).status_code == 422
    assert (await api.get("/v1/segments/nobody/customers")).status_code == 404
    assert (await api.get("/v1/segments/new/customers", params={"cursor": "%%"})).status_code == 422
    assert (await api.get("/v1/flows", params={"since": "May"})).status_code == 422
    assert (await api.get("/v1/models/v9")).status_code == 404


async def test_history_newest_first(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/customers/c9/history")).json()
    assert [c["segment"] for c in body["changes"]] == ["champions", "new"]
    assert (
        len((await api.get("/v1/customers/c9/history", params={"limit": 1})).json()["changes"]) == 1
    )


async def test_segment_statistics(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/segments")).json()
    assert body["customers"] == 10
    champions, new = body["segments"]  # by revenue share: 4 x (70..100) beat 6 x (10..60)
    assert (champions["name"], champions["customers"], new["customers"]) == ("champions", 4, 6)
    assert champions["revenue_share"] == pytest.approx(340 / 550)
    assert champions["customer_share"] == pytest.approx(0.4)
    assert champions["monetary"] == {"mean": 85.0, "median": 85.0}
    assert new["frequency"] == {"mean": 1.0, "median": 1.0}


async def test_members_page_by_cursor_and_as_csv(api: httpx.AsyncClient) -> None:
    seen, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        body = (await api.get("/v1/segments/new/customers", params=params)).json()
        seen.extend(row["customer_id"] for row in body["customers"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{n}" for n in range(6)]
    text = (await api.get("/v1/segments/new/customers.csv")).text
    assert (
        text == (await api.get("/v1/segments/new/customers", headers={"Accept": "text/csv"})).text
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["customer_id"] for row in rows] == seen
    assert list(rows[0]) == [
        "customer_id", "recency_days", "frequency", "monetary", "country", "last_order",
    ]  # fmt: skip
    assert rows[1]["monetary"] == "20.00"


async def test_flows_and_daily_sizes(api: httpx.AsyncClient) -> None:
    flows = (await api.get("/v1/flows")).json()["flows"]
    assert {(f["from_segment"], f["to_segment"], f["customers"]) for f in flows} == {
        (None, "new", 10),
        ("new", "champions", 4),
    }
    late = (await api.get("/v1/flows", params={"since": "2011-03-02"})).json()
    assert [f["customers"] for f in late["flows"]] == [4]
    days = (await api.get("/v1/segments/daily")).json()["days"]
    assert days == [
        {"date": "2011-03-01", "segments": {"new": 10}},
        {"date": "2011-03-02", "segments": {"new": 10}},  # no change: the day before's
        {"date": "2011-03-03", "segments": {"new": 6, "champions": 4}},
    ]
    until = await api.get(
        "/v1/segments/daily", params={"since": "2011-03-02", "until": "2011-03-02"}
    )
    assert until.json()["days"] == [{"date": "2011-03-02", "segments": {"new": 10}}]


async def test_models_without_any(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/models")).json() == {"current": None, "versions": []}


async def test_openapi_and_docs(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/v1/customers/{customer_id}", "/v1/segments", "/v1/flows", "/health"} <= set(paths)
    assert (await api.get("/docs")).status_code == 200
    script = await api.get("/static/plotly.min.js")
    assert script.status_code == 200 and len(script.content) > 1_000_000


async def test_keys_guard_everything_but_health_and_the_page_files(settings: Settings) -> None:
    await fill(settings)
    guarded = settings.model_copy(update={"api_keys": SecretStr("k-one,k-two")})
    async with serving(create_app(guarded)) as client:
        assert (await client.get("/health")).status_code == 200
        # The page's shell and scripts hold no customer data: a reload without ?key= loads.
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/static/page.js")).status_code == 200
        assert (await client.get("/static/../v1/segments")).status_code != 200
        refused = await client.get("/v1/customers/c1")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "k-one" not in refused.text
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/v1/customers/c1", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer k-two"}
        assert (await client.get("/v1/customers/c1", headers=right)).status_code == 200
        assert (await client.get("/v1/segments", params={"key": "k-one"})).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 401


async def test_redis_down_is_503(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serving(create_app(down)) as client:
        answer = await client.get("/v1/customers/c1")
        assert answer.status_code == 503
        assert answer.json()["status"] == 503
        assert "Traceback" not in answer.text
        assert (await client.get("/health")).status_code == 200
