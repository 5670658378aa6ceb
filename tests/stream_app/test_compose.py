"""docker-compose.yml and the Dockerfile agree with the code they run.

No Docker engine is needed: the files are read as text (and as YAML where PyYAML is
installed); ``docker compose config`` runs only where the compose plugin exists.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from stream_app.cli.main import cli
from stream_app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = {"kafka", "redis", "trainer", "worker", "watcher", "replayer"}
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
        "worker": "service_started",
    },
    "watcher": {"kafka": "service_healthy", "worker": "service_started"},
}


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml)")
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


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
    assert any("pip install ." in line for line in instructions)


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
