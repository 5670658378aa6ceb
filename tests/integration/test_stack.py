"""The local stack: Tansu and Redis start, answer and stop, and faust works against Tansu."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import redis.asyncio as aioredis
from aiokafka.admin import NewTopic
from click.testing import CliRunner

from stream_app.cli.main import cli
from stream_app.devtools import stack as local_stack
from stream_app.devtools.processes import ProcessInfo
from stream_app.devtools.record import StackInfo
from stream_app.devtools.stack import LocalStack
from stream_app.kafka import connection
from stream_app.settings import Settings

if TYPE_CHECKING:  # fixtures come from pytest; the import is for the annotation only
    from tests.integration.conftest import UniqueNames

PARTITIONS = 4

# A minimal faust app run as its own process, as `rfm worker` runs: it records every event
# of one topic in Redis, counts how often it processed one, and notes when it got partitions.
WORKER_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    import faust
    import redis.asyncio as aioredis

    bootstrap, redis_url, app_id, topic_name, prefix, partitions = sys.argv[1:7]
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        broker_session_timeout=6,  # ~3 s join at Tansu instead of ~5 s
        web_enabled=False,
        topic_partitions=int(partitions),
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
    client = aioredis.from_url(redis_url)


    @app.on_partitions_assigned.connect
    async def assigned(sender, assigned, **kwargs):
        if assigned:
            await client.rpush(f"{prefix}:assigned_at", time.time())


    @app.agent(topic)
    async def record(stream):
        async for value in stream:
            async with client.pipeline(transaction=True) as pipe:
                pipe.sadd(f"{prefix}:seen", value)
                pipe.incr(f"{prefix}:processed")
                await pipe.execute()


    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    app.main()
    """
)


def _pid_alive(pid: int) -> bool:
    # A zombie still has a /proc entry: look at its state, not only at its existence.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_session_stack_answers(stack: StackInfo, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
    finally:
        client.close()
    current = local_stack.status(stack.directory)
    assert current.up
    assert json.loads((stack.directory / "stack.json").read_text())["redis_url"] == redis_url


async def test_broker_answers_and_creates_topics(
    kafka_bootstrap: str, unique_names: UniqueNames
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    admin = connection.admin_client(settings)
    await admin.start()
    producer = connection.producer(settings)
    await producer.start()
    try:
        created = unique_names.topic("created")
        response = await admin.create_topics([NewTopic(created, 8, 1)])
        assert [code for _, code, _ in response.topic_errors] == [0]
        assert await producer.partitions_for(created) == set(range(8))
        # Tansu also creates a topic on first use (as Kafka's auto.create.topics.enable).
        auto = unique_names.topic("auto")
        metadata = await producer.send_and_wait(auto, b"x", key=b"k")
        assert metadata.offset == 0
        assert auto in await admin.list_topics()
    finally:
        await producer.stop()
        await admin.close()


def test_start_and_stop_leave_no_process(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "stack") as info:
        pids = [info.kafka.pid, info.redis.pid]
        assert all(_pid_alive(pid) for pid in pids)
        assert local_stack.status(info.directory).up
    assert not any(_pid_alive(pid) for pid in pids)
    assert not (tmp_path / "stack" / "stack.json").exists()
    assert (tmp_path / "stack" / "tansu.log").exists()  # logs stay for a post-mortem


def test_stop_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    # A stale stack.json whose pid now belongs to another process must not kill that process.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fake = ProcessInfo(
            name="kafka",
            pid=bystander.pid,
            port=1,
            argv=("tansu",),
            log=tmp_path / "tansu.log",
            start_ticks=1,  # not the bystander's start time
        )
        StackInfo(tmp_path, kafka=fake, redis=replace(fake, name="redis")).save()
        assert local_stack.status(tmp_path).down
        local_stack.stop(tmp_path, timeout=1)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_cli_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = str(tmp_path / "cli")
    up = runner.invoke(cli, ["stack", "up", "--dir", directory])
    try:
        assert up.exit_code == 0, up.output
        # Only export lines on stdout, so `eval "$(rfm stack up)"` works.
        lines = up.stdout.splitlines()
        assert [line.split("=")[0] for line in lines] == [
            "export RFM_KAFKA_BOOTSTRAP",
            "export RFM_REDIS_URL",
        ]
        assert "log" in up.stderr
        again = runner.invoke(cli, ["stack", "up", "--dir", directory])
        assert again.exit_code == 0
        assert again.stdout == up.stdout  # idempotent: same stack
        assert runner.invoke(cli, ["stack", "status", "--dir", directory]).exit_code == 0
        info = StackInfo.load(Path(directory))
    finally:
        down = runner.invoke(cli, ["stack", "down", "--dir", directory])
    assert down.exit_code == 0, down.output
    assert not _pid_alive(info.kafka.pid)
    assert not _pid_alive(info.redis.pid)
    assert runner.invoke(cli, ["stack", "status", "--dir", directory]).exit_code == 1
    assert runner.invoke(cli, ["stack", "down", "--dir", directory]).exit_code == 0


def _stack_run(runner: CliRunner, directory: str, *options: str) -> redis.Redis:
    up = runner.invoke(cli, ["stack", "up", "--dir", directory, *options])
    assert up.exit_code == 0, up.output
    return redis.Redis.from_url(StackInfo.load(Path(directory)).redis_url, decode_responses=True)


def test_cli_up_keeps_redis_data_across_restarts_unless_no_aof(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = str(tmp_path / "kept")
    try:
        client = _stack_run(runner, directory)
        client.set("rfm:clock", "1291191960")
        client.close()
        status = runner.invoke(cli, ["stack", "status", "--dir", directory])
        assert "append-only file" in status.stdout
        assert json.loads((Path(directory) / "stack.json").read_text())["redis_aof"] is True
        assert runner.invoke(cli, ["stack", "down", "--dir", directory]).exit_code == 0
        client = _stack_run(runner, directory)  # the same directory: the state is back
        assert client.get("rfm:clock") == "1291191960"
        client.close()
    finally:
        runner.invoke(cli, ["stack", "down", "--dir", directory])

    directory = str(tmp_path / "throwaway")
    try:
        client = _stack_run(runner, directory, "--no-aof")
        client.set("rfm:clock", "1291191960")
        client.close()
        status = runner.invoke(cli, ["stack", "status", "--dir", directory])
        assert "no persistence" in status.stdout
        assert runner.invoke(cli, ["stack", "down", "--dir", directory]).exit_code == 0
        client = _stack_run(runner, directory, "--no-aof")
        assert client.get("rfm:clock") is None
        client.close()
    finally:
        runner.invoke(cli, ["stack", "down", "--dir", directory])


class _Worker:
    """The faust worker script as a child process, stopped by the test whatever happens."""

    def __init__(self, tmp_path: Path, args: list[str]) -> None:
        script = tmp_path / "worker.py"
        script.write_text(WORKER_SCRIPT)
        self.log = tmp_path / "worker.log"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(script), *args],
                cwd=tmp_path,  # faust writes its data directory in the working directory
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started = time.time()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"worker exited ({self.process.returncode}):\n{self.log.read_text()}")

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # faust commits offsets on the way out
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = connection.producer(Settings(kafka_bootstrap=bootstrap), linger_ms=5)
    await producer.start()
    try:
        began = time.monotonic()
        sent = [await producer.send(topic, value, key=value[-1:]) for value in values]
        await asyncio.gather(*sent)
        return time.monotonic() - began
    finally:
        await producer.stop()


async def _wait_for(
    client: aioredis.Redis, key: str, count: int, worker: _Worker, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while await client.scard(key) < count:
        worker.check_alive()
        if time.monotonic() > deadline:
            seen = await client.scard(key)
            pytest.fail(f"{seen}/{count} events after {timeout} s:\n{worker.log.read_text()}")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(180)
async def test_faust_worker_consumes_and_resumes_from_committed_offsets(
    kafka_bootstrap: str,
    redis_url: str,
    unique_names: UniqueNames,
    tmp_path: Path,
) -> None:
    first, second = 300, 200
    topic = unique_names.topic("orders")
    prefix = unique_names.key_prefix
    admin = connection.admin_client(Settings(kafka_bootstrap=kafka_bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await _produce(kafka_bootstrap, topic, [f"event-{i:05d}".encode() for i in range(first)])

    args = [kafka_bootstrap, redis_url, unique_names.app_id, topic, prefix, str(PARTITIONS)]
    client = aioredis.Redis.from_url(redis_url)
    try:
        worker = _Worker(tmp_path, args)
        try:
            await _wait_for(client, f"{prefix}:seen", first, worker, timeout=90)
            assigned_at = float((await client.lindex(f"{prefix}:assigned_at", 0)) or 0)
            joined_s = assigned_at - worker.started
            print(f"worker start to partitions assigned: {joined_s:.1f} s")  # shown by -rP
            # broker_session_timeout=10 should give ~5 s at Tansu's member-id step (plus
            # faust's start-up); faust's default 60 s would give ~30 s.
            assert 0 < joined_s < 25
        finally:
            worker.stop()

        # Events published while no worker runs are picked up where the group left off.
        values = [f"event-{i:05d}".encode() for i in range(first, first + second)]
        await _produce(kafka_bootstrap, topic, values)
        worker = _Worker(tmp_path, args)
        try:
            await _wait_for(client, f"{prefix}:seen", first + second, worker, timeout=90)
            await asyncio.sleep(1)  # let a wrongly replayed event show up in the counter
        finally:
            worker.stop()
        processed = int(await client.get(f"{prefix}:processed") or 0)
        # Equal: the restarted worker resumed from the committed offsets, replaying nothing.
        assert processed == first + second
    finally:
        await client.aclose()


def test_cli_up_starts_a_redis_cluster_and_down_stops_every_node(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = str(tmp_path / "cluster")
    up = runner.invoke(
        cli, ["stack", "up", "--dir", directory, "--redis-cluster", "3", "--replicas", "1"]
    )
    try:
        assert up.exit_code == 0, up.output
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
        )
        assert exports["RFM_REDIS_CLUSTER"] == "true"
        assert len(exports["RFM_REDIS_URL"].split(",")) == 3  # every master
        info = StackInfo.load(Path(directory))
        assert len(info.cluster) == 6 and info.replicas == 1
        status = runner.invoke(cli, ["stack", "status", "--dir", directory, "--json"])
        assert status.exit_code == 0, status.output
        nodes = json.loads(status.stdout)["redis_cluster"]
        assert [node["answering"] for node in nodes] == [True] * 6
        client = redis.RedisCluster.from_url(exports["RFM_REDIS_URL"].split(",")[0])
        try:
            assert int(client.cluster_info()["cluster_slots_ok"]) == 16384
            assert len(client.get_primaries()) == 3
        finally:
            client.close()
    finally:
        down = runner.invoke(cli, ["stack", "down", "--dir", directory])
    assert down.exit_code == 0, down.output
    assert not any(_pid_alive(node.pid) for node in info.cluster)
    assert not _pid_alive(info.kafka.pid)


@pytest.mark.parametrize(
    "options", [["--redis-cluster", "2"], ["--replicas", "1"]], ids=["two masters", "no cluster"]
)
def test_cli_up_refuses_a_cluster_that_cannot_work(tmp_path: Path, options: list[str]) -> None:
    up = CliRunner().invoke(cli, ["stack", "up", "--dir", str(tmp_path / "no"), *options])
    assert up.exit_code == 2
    assert not (tmp_path / "no" / "stack.json").exists()
