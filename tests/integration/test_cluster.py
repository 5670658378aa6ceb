"""The whole UCI file through a real broker and worker into a real Redis Cluster.

The cluster is the one ``rfm stack up --redis-cluster 3 --replicas 1`` starts: three masters,
a replica each. The stream must agree with ``rfm train`` for every customer, stay the same
when the file is replayed again, match a bootstrap, lose nothing when a master is killed
mid-replay (its replica takes over), and store no offset before a replica holds the writes
it covers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from model_training.data.loading import load_transactions
from model_training.data.synth import generate_transactions, write_transactions
from model_training.model.artifact import load_model
from model_training.pipeline import train
from stream_app.core.events import SegmentChange
from stream_app.core.state import CustomerState
from stream_app.devtools.cluster import wait_until_served
from stream_app.devtools.processes import ProcessInfo
from stream_app.devtools.record import StackInfo
from stream_app.devtools.stack import LocalStack
from stream_app.kafka.clock_events import publish_clock_event
from stream_app.kafka.replay import publish_events, wait_until_processed
from stream_app.service.bootstrap import load_history
from stream_app.service.order_events import ReplayPlan, build_events
from stream_app.settings import Settings
from stream_app.store.keys import slot_of
from tests.integration.conftest import UniqueNames
from tests.integration.streaming import (
    LATER,
    T_REF,
    assert_same_states,
    clock_and_due,
    counters,
    export,
    full_states,
    on_store,
    read_topic,
    replay,
    running_server,
    running_worker,
    wait_for,
    wait_until_settled,
)

pytestmark = pytest.mark.uci


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A broker and a Redis Cluster of 3 masters with a replica each, as `rfm stack up
    --redis-cluster 3 --replicas 1` starts them."""
    directory = tmp_path_factory.mktemp("cluster-stack")
    with LocalStack(directory, die_with_parent=True, redis_cluster=3, replicas=1) as info:
        yield info


@pytest.fixture
def cluster_settings(cluster: StackInfo, unique_names: UniqueNames) -> Settings:
    return unique_names.settings(cluster)


def _role(node: ProcessInfo) -> list[str]:
    """``ROLE`` of a node, as redis-cli prints it (empty if it does not answer)."""
    done = subprocess.run(
        ["redis-cli", "-p", str(node.port), "role"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return done.stdout.split()


def _masters(cluster: StackInfo) -> list[ProcessInfo]:
    """The nodes that are masters now (a failover may have changed which)."""
    return [node for node in cluster.cluster if _role(node)[:1] == ["master"]]


def _failed_over(survivor: ProcessInfo, dead: ProcessInfo) -> bool:
    """Whether ``survivor`` sees ``dead`` failed and serving no slot (its replica does)."""
    done = subprocess.run(
        ["redis-cli", "-p", str(survivor.port), "cluster", "nodes"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[1].startswith(f"127.0.0.1:{dead.port}@"):
            return "fail" in fields[2].split(",") and len(fields) == 8
    return False


def _replica_of(cluster: StackInfo, master: ProcessInfo) -> ProcessInfo:
    # ROLE of a master: "master", its offset, then host, port and offset of each replica.
    port = int(_role(master)[3])
    return next(node for node in cluster.cluster if node.port == port)


def test_uci_replay_on_a_cluster_equals_batch_and_again_changes_nothing(
    cluster_settings: Settings,
    plan: ReplayPlan,
    trained: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    model_dir, batch = trained
    settings = cluster_settings.model_copy(update={"model_dir": model_dir})
    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, plan.events, timeout_s=300)
        first = export(settings, T_REF.timestamp(), load_model(model_dir))
        states_once = full_states(settings)
        assert counters(settings)["applied"] == len(plan.events)

        replay(settings, plan.events, timeout_s=300)
        assert worker.process.poll() is None, worker.log()
        assert counters(settings)["duplicates"] == len(plan.events)
        assert_same_states(full_states(settings), states_once)

        # Time passes: the due customers, spread over the due sets of every node, move.
        asyncio.run(publish_clock_event(settings, LATER))
        wait_for(
            lambda: clock_and_due(settings, LATER.timestamp()) == (LATER.timestamp(), 0),
            timeout_s=180,
            what="the clock to reach 2012-06-01 and the due customers to be re-scored",
        )
        counts = on_store(settings, lambda store: store.segment_counts())

    merged = batch.merge(first, on="customer_id", suffixes=("_batch", "_stream"))
    assert len(first) == len(batch) == len(merged) == 4334
    assert (merged["recency_days_batch"] == merged["recency_days_stream"]).all()
    assert (merged["frequency_batch"] == merged["frequency_stream"]).all()
    assert (merged["monetary_batch"] - merged["monetary_stream"]).abs().max() <= 0.01
    assert (merged["segment_batch"] == merged["segment_stream"]).all()
    # The segment counts, kept per hash slot, add up to every customer with a segment.
    assert sum(counts.values()) == 4334


def test_bootstrap_into_a_cluster_gives_the_replay_state(
    cluster_settings: Settings, uci_path: Path, expected_states: dict[str, CustomerState]
) -> None:
    on_store(cluster_settings, lambda store: load_history(store, uci_path))
    assert_same_states(full_states(cluster_settings), expected_states)


def test_a_master_killed_mid_replay_fails_over_and_nothing_is_lost(
    cluster: StackInfo,
    cluster_settings: Settings,
    plan: ReplayPlan,
    trained: tuple[Path, pd.DataFrame],
    expected_states: dict[str, CustomerState],
    tmp_path: Path,
) -> None:
    model_dir, _ = trained
    settings = cluster_settings.model_copy(update={"model_dir": model_dir, "batch_size": 200})
    total = len(plan.events)
    with running_worker(settings, tmp_path / "worker.log") as worker:
        targets = asyncio.run(publish_events(settings, plan.events))
        wait_for(
            lambda: counters(settings).get("events", 0) > total // 3,
            timeout_s=180,
            what="a third of the events to be processed",
        )
        victim = _masters(cluster)[0]  # the first node RFM_REDIS_URL names, too
        os.kill(victim.pid, signal.SIGKILL)
        survivors = [node for node in cluster.cluster if node.port != victim.port]
        wait_for(
            lambda: _failed_over(survivors[0], victim),
            timeout_s=60,
            what=f"the replica of the killed master (port {victim.port}) to take over",
        )
        wait_until_served([node.port for node in survivors], timeout=60)
        assert counters(settings)["events"] < total, "the replay ended before the failover"
        asyncio.run(wait_until_processed(settings, targets, timeout_s=300))
        wait_until_settled(settings)
        assert worker.process.poll() is None, worker.log()
    assert_same_states(full_states(settings), expected_states)


def test_no_offset_is_stored_before_a_replica_holds_the_writes(
    cluster: StackInfo,
    cluster_settings: Settings,
    plan: ReplayPlan,
    tmp_path: Path,
) -> None:
    settings = cluster_settings.model_copy(update={"model_dir": tmp_path / "no-model"})
    events = plan.events[:3000]
    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, events[:500])
        stored = on_store(settings, lambda store: store.offsets())
        # Every master has writes in every batch: freezing one replica stops the offsets.
        replica = _replica_of(cluster, _masters(cluster)[0])
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            targets = asyncio.run(publish_events(settings, events[500:]))
            time.sleep(8.0)
            assert on_store(settings, lambda store: store.offsets()) == stored
            assert worker.process.poll() is None, worker.log()
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        asyncio.run(wait_until_processed(settings, targets, timeout_s=180))
        assert sum(on_store(settings, lambda store: store.offsets()).values()) > sum(
            stored.values()
        )


def test_the_profile_api_reads_a_cluster_as_it_reads_one_redis(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "transactions.csv.gz"
    write_transactions(generate_transactions(customers=120, seed=31), path)
    train(path, tmp_path / "model")
    settings = cluster_settings.model_copy(update={"model_dir": tmp_path / "model"})
    with running_worker(settings, tmp_path / "worker.log"):
        replay(settings, build_events(load_transactions(path)).events, timeout_s=120)
        topic = [
            SegmentChange.model_validate_json(value)
            for _, value in read_topic(settings, settings.changes_topic)
        ]
    clock = on_store(settings, lambda store: store.clock())
    assert clock is not None
    frame = export(settings, clock, None)
    segmented = frame[frame["segment"] != ""]
    with running_server(settings, tmp_path / "serve.log") as base:
        client = httpx.Client(base_url=base, timeout=30.0)
        segments = {
            s["name"]: s["customers"] for s in client.get("/v1/segments").json()["segments"]
        }
        assert {name: n for name, n in segments.items() if n} == dict(Counter(segmented["segment"]))
        for name, members in segmented.groupby("segment"):
            # Paged slot by slot, 7 at a time: every member once, in the cluster's page order.
            ids: list[str] = []
            cursor: str | None = None
            while True:
                page = client.get(
                    f"/v1/segments/{name}/customers",
                    params={"limit": 7, **({"cursor": cursor} if cursor else {})},
                ).json()
                ids += [customer["customer_id"] for customer in page["customers"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert ids == sorted(members["customer_id"], key=lambda c: (slot_of(c), c))
            text = client.get(f"/v1/segments/{name}/customers.csv").text
            assert [row["customer_id"] for row in csv.DictReader(io.StringIO(text))] == ids
        distinct = {(c.customer_id, c.sequence): c for c in topic}
        flows = client.get("/v1/flows").json()["flows"]
        assert {
            (f["from_segment"], f["to_segment"], f["reason"]): f["customers"] for f in flows
        } == (dict(Counter((c.previous_segment, c.segment, c.reason) for c in distinct.values())))
        days = client.get("/v1/segments/daily").json()["days"]
        assert {k: v for k, v in days[-1]["segments"].items() if v} == {
            name: n for name, n in segments.items() if n
        }
        client.close()
