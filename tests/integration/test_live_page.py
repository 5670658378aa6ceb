"""The live page in a real browser: headless Debian Chromium driven by Playwright.

A worker and ``rfm serve`` (with an API key) run as processes of their own, and the page is
opened as a marketer would (``/?key=...``) on an empty stream. Then a model is published and
a small synthetic shop replayed while the page is open. The page must say what it has not
got yet, show the replay's changes live, show the segment sizes the API gives under their
labels, show a change published while it is open, look customers up, say what is wrong when
the API answers 503, ask for nothing but the service itself, and log no console error.
Screenshots are kept for a person to look at: in ``$RFM_SCREENSHOT_DIR`` when set, else in
the test's temporary directory (the path is printed, with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from pydantic import SecretStr

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.kafka.replay import publish_events
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from stream_app.store.keys import keys_for
from tests.fakes import V1, order_event
from tests.integration.streaming import (
    publish_model,
    replay,
    running_server,
    running_worker,
    wait_for,
)

T = TypeVar("T")

CUSTOMERS = 300
KEY = "page-test-key"
NEW_CUSTOMER = "page-new-1"
#: Debian's Chromium (package chromium); Playwright never downloads a browser here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            "NO BROWSER: the live-page test needs Debian's Chromium at /usr/bin/chromium "
            "(apt-get install chromium); .ci/run installs it"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes]]:
    path = tmp_path_factory.mktemp("shop") / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=CUSTOMERS, seed=5), path)
    return build_events(load_transactions(path)).events


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RFM_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Api:
    """``rfm serve`` running as a process, and a JSON client of it with the key."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@contextmanager
def running_api(settings: Settings, log_path: Path) -> Iterator[Api]:
    """Start ``rfm serve`` with ``KEY`` as its one API key; stop it at exit."""
    keyed = settings.model_copy(update={"api_keys": SecretStr(KEY)})
    with running_server(keyed, log_path) as base:
        yield Api(base)


def off_thread(work: Callable[..., T], *args: Any) -> T:
    """Run ``work(*args)`` in a thread: Playwright's sync API holds the test thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result(timeout=180)


def publish(settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
    """Publish ``events`` without waiting for the workers."""
    asyncio.run(publish_events(settings, events))


class Browser:
    """One page of headless Chromium, with the console errors and page errors it had."""

    def __init__(self, playwright: Any, chromium: str) -> None:
        self.browser = playwright.chromium.launch(executable_path=chromium)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def explain(self, screenshots: Path) -> str:
        """What the page showed when a check failed (a screenshot is saved too)."""
        self.page.screenshot(path=screenshots / "failure.png", full_page=True)
        states = self.page.eval_on_selector_all(
            "[data-state]", "nodes => nodes.map(n => (n.id || n.tagName) + '=' + n.dataset.state)"
        )
        messages = self.page.eval_on_selector_all(
            ".empty:not([hidden]), .banner:not([hidden])", "nodes => nodes.map(n => n.textContent)"
        )
        return f"states {states}; messages {messages}; problems {self.problems}"

    def shot(self, path: Path) -> None:
        self.page.wait_for_timeout(500)  # the highlight of a new change fades
        self.page.screenshot(path=path, full_page=True)


def test_the_live_page_shows_the_stream_as_it_happens(
    chromium: str,
    stack_settings: Settings,
    events: list[tuple[bytes, bytes]],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    started = time.monotonic()
    settings = stack_settings.model_copy(
        update={"model_dir": tmp_path / "models", "model_refresh_s": 0.5}
    )
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        with (
            running_worker(settings, tmp_path / "worker.log"),
            running_api(settings, tmp_path / "api.log") as api,
            sync_api.sync_playwright() as playwright,
        ):
            browser = Browser(playwright, chromium)
            try:
                feed_s = _check_the_page(browser, api, settings, client, events, screenshots)
            except Exception as exc:
                raise AssertionError(browser.explain(screenshots)) from exc
        print(
            f"\nscreenshots in {screenshots}; the change was on the page {feed_s:.1f} s after "
            f"it was published; {time.monotonic() - started:.0f} s in all"
        )
    finally:
        client.close()


def _check_the_page(
    browser: Browser,
    api: Api,
    settings: Settings,
    client: Any,
    events: list[tuple[bytes, bytes]],
    screenshots: Path,
) -> float:
    """The checks of the page, from an empty stream on; the feed's delay in seconds."""
    keys = keys_for(settings)
    page = browser.page

    # Nothing yet: the page says so.
    page.goto(f"{api.base}/?key={KEY}")
    page.wait_for_selector("#segments-card[data-state=empty]", timeout=20_000)
    page.wait_for_selector("#feed-state[data-state=open]", timeout=15_000)
    assert "No model yet" in page.text_content("#segments-empty")
    assert page.is_visible("#feed-empty") and page.is_visible("#daily-empty")
    page.wait_for_selector("#flows-empty:not([hidden])", timeout=10_000)
    browser.shot(screenshots / "before-any-order.png")

    # A model, then the shop's orders, while the page is open.
    off_thread(publish_model, settings)
    wait_for(lambda: client.hget(keys.rescore_job(V1), "done"), 60, "the model served")
    off_thread(replay, settings, events)
    # Hundreds of first segments, seen live; the list keeps the newest 50.
    page.wait_for_function("document.querySelectorAll('#feed li').length === 50", timeout=15_000)
    assert page.is_hidden("#feed-empty")
    page.wait_for_timeout(1000)
    assert page.locator("#feed li").count() == 50

    # Opened again: the API's sizes, under the API's labels.
    page.reload()
    page.wait_for_selector("#segments-card[data-state=ready]", timeout=15_000)
    page.wait_for_selector("#feed-state[data-state=open]", timeout=15_000)
    stats = api.get("/v1/segments")
    assert stats["model_version"] == V1 and stats["segments"], stats
    shown = page.eval_on_selector_all(
        "#segments-rows tr",
        "rows => rows.map(r => [r.dataset.segment, Number(r.dataset.customers),"
        " r.querySelector('.segment-badge').textContent])",
    )
    assert shown == [[s["name"], s["customers"], s["label"]] for s in stats["segments"]]
    assert page.text_content("#kpi-customers") == f"{stats['customers']:,}"
    assert api.get("/v1/segments/daily")["days"], "no sizes per day"
    page.wait_for_selector("#daily-chart .plot-container", timeout=10_000)
    page.wait_for_selector("#flows-chart .plot-container", timeout=10_000)

    # A new customer's first order gives them a first segment: a change, live.
    clock = datetime.fromtimestamp(float(client.get(keys.clock) or 0), UTC)
    order = order_event("page-order-1", NEW_CUSTOMER, clock)
    published_at = time.monotonic()
    off_thread(publish, settings, [(NEW_CUSTOMER.encode(), order)])
    item = page.locator(f'#feed li[data-customer="{NEW_CUSTOMER}"]')
    item.wait_for(timeout=15_000)
    feed_s = time.monotonic() - published_at
    profile = api.get(f"/v1/customers/{NEW_CUSTOMER}")
    assert item.get_attribute("data-segment") == profile["segment"]
    assert item.locator(".segment-badge.to").text_content() == profile["label"]
    browser.shot(screenshots / "live-page.png")

    # The moves of one day, for one reason: that day's first orders are among them.
    day = clock.date().isoformat()
    page.fill("#flows-since", day)
    page.fill("#flows-until", day)
    page.select_option("#flows-reason", "order")  # asks for the flows again by itself
    page.wait_for_function(
        "document.getElementById('flows-summary').textContent.includes(' moves on ')",
        timeout=10_000,
    )
    flows = api.get(f"/v1/flows?since={day}&until={day}")["flows"]
    moved = sum(f["customers"] for f in flows if f["reason"] == "order")
    assert moved >= 1 and page.is_visible("#flows-chart .plot-container")
    assert page.text_content("#flows-summary").startswith(f"{moved:,} moves on ")

    # The lookup shows the customer's segment by its label, and the history.
    page.fill("#lookup-id", NEW_CUSTOMER)
    page.click("#lookup-form button")
    page.wait_for_selector("#lookup-card[data-state=ready]", timeout=10_000)
    assert page.text_content("#lookup-segment") == profile["label"]
    assert page.locator("#lookup-history li").count() >= 1
    browser.shot(screenshots / "lookup.png")
    assert browser.problems == []
    # Nothing from anywhere but the service: the page works with no internet.
    assert all(url.startswith(api.base + "/") for url in browser.requests), browser.requests
    assert f"{api.base}/static/plotly.min.js?key={KEY}" in browser.requests

    # An unknown customer is said so (the browser logs the 404 itself).
    page.fill("#lookup-id", "nobody-at-all")
    page.click("#lookup-form button")
    page.wait_for_selector("#lookup-card[data-state=not-found]", timeout=10_000)
    assert "No customer" in page.text_content("#lookup-message")

    # Redis away (the API answers 503): the page says what is wrong, never goes blank.
    problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503}
    page.route(
        "**/v1/segments",
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            body=json.dumps({**problem, "detail": "Redis is unreachable"}),
        ),
    )
    page.reload()
    page.wait_for_selector("#segments-card[data-state=error]", timeout=15_000)
    assert "Redis is unreachable" in page.text_content("#segments-empty")
    assert page.is_visible("#feed-card") and page.is_visible("#lookup-card")
    browser.shot(screenshots / "segments-unavailable.png")
    return feed_s
