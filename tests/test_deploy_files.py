"""The deploy/ artifacts, checked statically by the tools their engines use: hadolint for the
Dockerfile, Docker Compose's own `config -q` for compose.yaml (with and without deploy/.env),
`systemd-analyze verify` and `security` for the unit (exposure at most 2.0). The scripts
deploy/verify-*.sh build and run them for real (not part of the test run: they need root,
debootstrap, podman and minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(BIN))
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' installs it)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_essentials() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage
    assert "requirements.lock" in text and "--no-deps" in text  # pinned, nothing resolved
    assert "HEALTHCHECK" in text and '["monitor", "health"]' in text
    assert "USER 10001" in text and 'ENTRYPOINT ["monitor"]' in text  # non-root, exec form
    assert "MONITOR_LOG_FORMAT=json" in text


def test_requirements_lock_pins_every_dependency() -> None:
    lines = [
        line
        for line in (DEPLOY / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines and all("==" in line for line in lines), lines
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert {"feedparser", "sqlalchemy", "apprise", "psycopg", "psycopg-binary"} <= names


@pytest.mark.parametrize("env_file", [False, True], ids=["without-env", "with-env"])
def test_compose_file_is_valid(tmp_path: Path, env_file: bool) -> None:
    """`docker compose config` as a new user runs it: deploy/.env may be missing."""
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(DEPLOY / "compose.yaml", copy / "compose.yaml")
    if env_file:
        shutil.copy(DEPLOY / "env.example", copy / ".env")
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(copy / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    shown = subprocess.run(
        [tool("docker-compose"), "-f", str(copy / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert "condition: service_healthy" in shown and "pg_isready" in shown
    assert ("change-me" in shown) == env_file


@pytest.mark.parametrize("env_file", [False, True], ids=["without-env", "with-env"])
def test_cluster_compose_file_is_valid(tmp_path: Path, env_file: bool) -> None:
    """deploy/compose.cluster.yaml: PostgreSQL, the broker, two schedulers, workers."""
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(DEPLOY / "compose.cluster.yaml", copy / "compose.cluster.yaml")
    if env_file:
        shutil.copy(DEPLOY / "env.example", copy / ".env")
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "REDIS_PASSWORD")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")
    compose = [tool("docker-compose"), "-f", str(copy / "compose.cluster.yaml"), "config"]
    result = subprocess.run([*compose, "-q"], capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    shown = subprocess.run(
        [*compose, "--format", "json"], capture_output=True, text=True, check=True, env=env
    ).stdout
    import json

    services = json.loads(shown)["services"]
    assert set(services) == {"db", "broker", "scheduler", "worker"}
    scheduler, worker = services["scheduler"], services["worker"]
    assert scheduler["command"] == ["run", "--role", "scheduler"]
    assert scheduler["deploy"]["replicas"] == 2
    assert worker["command"] == ["worker"] and worker["deploy"]["replicas"] >= 2
    for role in (scheduler, worker):
        assert role["depends_on"]["db"]["condition"] == "service_healthy"
        assert role["depends_on"]["broker"]["condition"] == "service_healthy"
        assert role["environment"]["MONITOR_BROKER_URL"].startswith("redis://:")
    assert ("change-me-too" in shown) == env_file


def _unit_root(tmp_path: Path) -> Path:
    """A root where the unit's ExecStart exists (a stub) and systemd's own units are found."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(DEPLOY / "monitor.service", root / "etc/systemd/system/monitor.service")
    stub = root / "opt/news-monitor/bin/monitor"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for units in ("usr/lib/systemd/system", "lib/systemd/system"):
        if (Path("/") / units).is_dir():
            shutil.copytree(Path("/") / units, root / units, symlinks=True)
    (root / "bin").mkdir(exist_ok=True)
    kill = root / "bin/kill"
    kill.write_text("#!/bin/sh\n")
    kill.chmod(0o755)
    return root


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    root = _unit_root(tmp_path)
    result = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", "/etc/systemd/system/monitor.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on unknown keys and bad values and only warns: any output is a failure
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_unit_hardening_exposure_at_most_2() -> None:
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(DEPLOY / "monitor.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-500:] + result.stderr
    assert "Overall exposure level for monitor.service" in result.stdout


def test_unit_essentials() -> None:
    text = (DEPLOY / "monitor.service").read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=news-monitor",
        "EnvironmentFile=-/etc/news-monitor/env",
    ):
        assert f"\n{line}" in text, line


def test_the_image_lock_pins_every_runtime_dependency() -> None:
    """deploy/requirements.lock is installed with --no-deps: a dependency missing there is
    missing in the image (it happened once: the worker processes could not import)."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["postgres"], *extras["cluster"]]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lock = (ROOT / "deploy" / "requirements.lock").read_text(encoding="utf-8")
    pinned = {norm(line.split("==")[0]) for line in lock.splitlines() if "==" in line}
    names = {norm(re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0]) for spec in wanted}
    assert names - pinned == set()
