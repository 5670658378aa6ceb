"""Fixtures for runs through a real broker (Tansu) and a real Redis.

One stack serves the whole test session (started on free ports in a temporary directory,
stopped at the end even when tests fail). Tests keep apart by naming: each gets its own topic
names, consumer group and Redis key prefix from :func:`unique_names`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from model_training.data.loading import load_transactions
from model_training.pipeline import train
from stream_app.core.state import CustomerState
from stream_app.devtools.record import StackInfo
from stream_app.devtools.servers import find_redis_server, find_tansu
from stream_app.devtools.stack import LocalStack
from stream_app.exceptions import StackError
from stream_app.service.bootstrap import bootstrap_states
from stream_app.service.order_events import ReplayPlan, build_events
from stream_app.settings import Settings
from tests.integration.streaming import T_REF

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``integration``."""
    # This hook sees the whole session's items, not only this folder's: filter by path.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class UniqueNames:
    """Names no other test uses: topics, consumer group and key prefix share one suffix."""

    suffix: str

    def topic(self, base: str) -> str:
        """Return ``base`` made unique to this test."""
        return f"{base}-{self.suffix}"

    @property
    def app_id(self) -> str:
        """A consumer group (faust app id) of this test's own."""
        return f"rfm-test-{self.suffix}"

    @property
    def key_prefix(self) -> str:
        """A Redis key prefix of this test's own."""
        return f"t{self.suffix}"

    def fields(self) -> dict[str, str]:
        """The settings these names fill: consumer group, topics and key prefix."""
        return {
            "app_id": self.app_id,
            "orders_topic": self.topic("orders"),
            "changes_topic": self.topic("segment-changes"),
            "dlq_topic": self.topic("orders.dlq"),
            "key_prefix": self.key_prefix,
        }

    def settings(self, stack: StackInfo) -> Settings:
        """Settings pointing at ``stack``, with these names."""
        return stack.settings(
            **self.fields(),
            session_timeout_s=10.0,
            # Retraining only when a test asks for it, so results follow the model it trained.
            retrain_interval_s=0.0,
        )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A Tansu broker and a Redis server on free ports for the whole test session."""
    try:
        find_tansu()
        find_redis_server()
    except StackError as exc:
        pytest.skip(f"local stack unavailable: {exc}")
    # The directory is kept by pytest (last few sessions), so the logs outlive a failure.
    with LocalStack(tmp_path_factory.mktemp("stack"), die_with_parent=True) as info:
        yield info


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackInfo) -> str:
    """Bootstrap servers of the session's broker (``127.0.0.1:PORT``)."""
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def redis_url(stack: StackInfo) -> str:
    """DSN of the session's Redis (``redis://127.0.0.1:PORT/0``)."""
    return stack.redis_url


@pytest.fixture
def unique_names() -> UniqueNames:
    """A random suffix, with helpers, so tests share no topic, group or key."""
    return UniqueNames(uuid.uuid4().hex[:10])


@pytest.fixture
def stack_settings(stack: StackInfo, unique_names: UniqueNames) -> Settings:
    """Settings pointing at the session's stack, with this test's own names."""
    return unique_names.settings(stack)


@pytest.fixture(scope="module")
def uci_frame(uci_path: Path) -> pd.DataFrame:
    return load_transactions(uci_path)


@pytest.fixture(scope="module")
def plan(uci_frame: pd.DataFrame) -> ReplayPlan:
    return build_events(uci_frame)


@pytest.fixture(scope="module")
def expected_states(uci_frame: pd.DataFrame) -> dict[str, CustomerState]:
    return {state.customer_id: state for state in bootstrap_states(uci_frame)}


@pytest.fixture(scope="module")
def trained(uci_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    output = tmp_path_factory.mktemp("model")
    train(uci_path, output, t_ref=T_REF.replace(tzinfo=None))
    return output, pd.read_csv(output / "rfm.csv", dtype={"customer_id": str})
