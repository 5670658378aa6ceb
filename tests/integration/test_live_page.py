"""The live page in a real browser: headless Debian Chromium driven by Playwright.

A worker replays a small synthetic shop with a model, ``rfm serve`` runs as a process of its
own with an API key, and the page is opened as a marketer would (``/?key=...``). It must load
without a console error, show the segment sizes the API gives, show a change published while
it is open, and look a customer up. Screenshots are kept for a person to look at: in
``$RFM_SCREENSHOT_DIR`` when set, else in the test's temporary directory (the path is printed).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from stream_app.devtools.network import free_port
from stream_app.kafka.replay import publish_events
from stream_app.service.order_events import build_events
from stream_app.settings import Settings
from stream_app.store.client import redis_client
from stream_app.store.keys import Keys
from stream_app.store.registry import ModelRegistry
from tests.fakes import V1, fitted_segmenter, model_card, order_event
from tests.integration.streaming import replay, running_worker, wait_for

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
    """Start ``python -m stream_app serve`` on a free port with ``KEY``; stop it at exit."""
    port = free_port()
    env = {**os.environ, **settings.to_env(), "RFM_API_KEYS": KEY}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = Api(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"rfm serve exited:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(api.base + "/health", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        wait_for(answers, 30, "rfm serve to answer")
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def publish(settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
    """Publish ``events`` without waiting for the workers.

    In a thread of its own: Playwright's sync API runs an event loop in the test's thread.
    """
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish_events(settings, events)).result(timeout=30)


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
    keys = Keys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    async def publish_model() -> None:
        async_client = redis_client(settings.redis_url)
        try:
            await ModelRegistry(settings.model_dir, async_client, keys).publish(
                fitted_segmenter(0), model_card(V1)
            )
        finally:
            await async_client.aclose()

    asyncio.run(publish_model())
    try:
        with (
            running_worker(settings, tmp_path / "worker.log"),
            running_api(settings, tmp_path / "api.log") as api,
        ):
            # Read before the replay, as a deployment's page would be: the sizes per day are
            # kept from the first read of the segments on.
            api.get("/v1/segments")
            replay(settings, events)
            wait_for(lambda: client.hget(keys.rescore_job(V1), "done"), 60, "the first scoring")
            with sync_api.sync_playwright() as playwright:
                feed_s = _drive_the_page(playwright, chromium, settings, api, client, screenshots)
        print(
            f"\nscreenshots in {screenshots}; the change was on the page {feed_s:.1f} s after "
            f"it was published; {time.monotonic() - started:.0f} s in all"
        )
    finally:
        client.close()


def _drive_the_page(
    playwright: Any, chromium: str, settings: Settings, api: Api, client: Any, screenshots: Path
) -> float:
    """Open the page, check what it shows, take the screenshots; the feed's delay in s."""
    keys = Keys(settings.key_prefix)
    browser = playwright.chromium.launch(executable_path=chromium)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    page.goto(f"{api.base}/?key={KEY}")
    assert "key=" not in page.url  # the key is kept for the tab, not left in the bar
    page.wait_for_selector("#segments-card[data-state=ready]", timeout=15_000)
    page.wait_for_selector("#feed-state[data-state=open]", timeout=15_000)

    # The sizes on the page are the API's, under the API's labels.
    stats = api.get("/v1/segments")
    assert stats["model_version"] == V1 and stats["segments"], stats
    shown = page.eval_on_selector_all(
        "#segments-rows tr",
        "rows => rows.map(r => [r.dataset.segment, Number(r.dataset.customers),"
        " r.querySelector('.segment-badge').textContent])",
    )
    assert shown == [[s["name"], s["customers"], s["label"]] for s in stats["segments"]]
    assert page.text_content("#kpi-customers") == f"{stats['customers']:,}"
    days = api.get("/v1/segments/daily")["days"]
    assert days, "no sizes per day"
    page.wait_for_selector("#daily-chart .plot-container", timeout=10_000)
    assert page.is_visible("#flows-chart .plot-container")

    # A first order of a new customer gives them a first segment: a change, live.
    clock = datetime.fromtimestamp(float(client.get(keys.clock) or 0), UTC)
    order = order_event("page-order-1", NEW_CUSTOMER, clock)
    published_at = time.monotonic()
    publish(settings, [(NEW_CUSTOMER.encode(), order)])
    page.wait_for_selector(f'#feed li[data-customer="{NEW_CUSTOMER}"]', timeout=15_000)
    feed_s = time.monotonic() - published_at
    profile = api.get(f"/v1/customers/{NEW_CUSTOMER}")
    item = page.locator(f'#feed li[data-customer="{NEW_CUSTOMER}"]')
    assert item.get_attribute("data-segment") == profile["segment"]
    assert item.locator(".segment-badge.to").text_content() == profile["label"]
    page.wait_for_timeout(500)  # the arrival highlight fades
    page.screenshot(path=screenshots / "live-page.png", full_page=True)

    # The lookup shows the customer's segment, by its label.
    page.fill("#lookup-id", NEW_CUSTOMER)
    page.click("#lookup-form button")
    page.wait_for_selector("#lookup-card[data-state=ready]", timeout=10_000)
    assert page.text_content("#lookup-segment") == profile["label"]
    assert page.locator("#lookup-history li").count() >= 1
    page.locator("#lookup-card").scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "lookup.png", full_page=True)
    assert problems == []

    # An unknown customer is said so (the browser logs the 404 itself).
    page.fill("#lookup-id", "nobody-at-all")
    page.click("#lookup-form button")
    page.wait_for_selector("#lookup-card[data-state=not-found]", timeout=10_000)
    assert "No customer" in page.text_content("#lookup-message")
    browser.close()
    return feed_s
