"""compose.yaml stays consistent with the CLI, the Dockerfile and the settings (no Docker needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gateway.cli import _WORKER_COMMANDS, _parser
from gateway.config import VARIABLES
from handlers.cli import _worker_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_there_is_one_redis_a_web_app_and_a_worker() -> None:
    assert set(SERVICES) == {"redis", "check", "web", "worker"}


def test_bad_settings_stop_up_once_instead_of_restarting_the_web_app_forever() -> None:
    check = SERVICES["check"]
    assert check["command"][0] == "check" and check["restart"] == "no"
    args = check["command"][1:]
    assert args == ["--serve"]
    for name in ("web", "worker"):
        assert SERVICES[name]["depends_on"]["check"] == {"condition": "service_completed_successfully"}
    for name in ("check", "web", "worker"):  # no .env: compose says so once, before starting anything
        assert SERVICES[name]["env_file"] == [{"path": ".env", "required": True}]


def test_redis_persists_with_aof_never_evicts_and_keeps_its_data_in_a_volume() -> None:
    redis = SERVICES["redis"]
    assert re.fullmatch(r"redis:([7-9]|\d{2,})(\.\d+)*(-\w+)?", redis["image"])  # BLMOVE needs >= 6.2
    args = " ".join(redis["command"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args
    (volume,) = redis["volumes"]
    name, mount = volume.split(":")
    assert mount == "/data" and name in COMPOSE["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_web_command_is_gateway_serve_on_the_port_the_image_health_checks_and_publishes() -> None:
    web = SERVICES["web"]
    parsed = _parser().parse_args(web["command"])
    assert parsed.command.__name__ == "serve_command"
    assert parsed.host == "0.0.0.0"  # noqa: S104 (inside a container)
    assert f"127.0.0.1:{parsed.port}/health" in DOCKERFILE and f"EXPOSE {parsed.port}" in DOCKERFILE
    (published,) = web["ports"]
    host, host_port, container_port = published.split(":")
    assert host == "127.0.0.1" and int(container_port) == parsed.port and host_port.isdigit()


def test_worker_command_is_a_valid_gateway_worker_command_without_the_http_health_check() -> None:
    worker = SERVICES["worker"]
    name, *rest = worker["command"]
    assert name == "worker" and name in _WORKER_COMMANDS
    options = _worker_parser().parse_args(rest)
    assert worker["healthcheck"] == {"disable": True}
    # Docker's SIGKILL must not arrive before the worker's drain (--grace) is over.
    assert _seconds(worker["stop_grace_period"]) > options.grace


def test_web_and_worker_run_the_same_image_after_redis_is_healthy() -> None:
    web, worker = SERVICES["web"], SERVICES["worker"]
    assert web["build"] == worker["build"] == "." and web["image"] == worker["image"]
    for service in (web, worker):
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


def test_every_variable_compose_sets_is_a_setting() -> None:
    for service in SERVICES.values():
        assert set(service.get("environment", {})) <= set(VARIABLES)
