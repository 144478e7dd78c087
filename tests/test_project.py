"""The project's own promises: README, CI, Dockerfile and settings stay consistent with the code."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from gateway.cli import _parser
from gateway.config import VARIABLES as WEB_VARIABLES
from handlers.config import VARIABLES as WORKER_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    assert commands[:2] == ["scripts/dev", "scripts/test"]
    assert (ROOT / "scripts/dev").stat().st_mode & 0o111 and (ROOT / "scripts/test").stat().st_mode & 0o111


def test_readme_shows_the_example_agent_as_it_is() -> None:
    shown = re.search(r"```python\n# examples/my_agent.py[^\n]*\n(.+?)```", README, re.DOTALL)
    source = (ROOT / "examples/my_agent.py").read_text()
    assert shown and shown.group(1).strip() == source[source.index("from handlers.agent") :].strip()


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^scripts/test\b", ci, re.MULTILINE)


def test_readme_documents_every_setting_and_no_other() -> None:
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert documented == set(WEB_VARIABLES) | set(WORKER_VARIABLES)


def test_every_setting_is_read_by_config_only() -> None:
    for path in [*ROOT.glob("gateway/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        if path.name != "config.py":
            assert "os.environ[" not in path.read_text() and "os.getenv" not in path.read_text(), path


def test_dockerfile_final_stage_runs_as_non_root_without_build_tools() -> None:
    final = _final_stage()
    users = [args for name, args in final if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(args for name, args in final if name == "RUN")
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runs)


def test_dockerfile_copies_what_pip_needs_and_dockerignore_keeps_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {
        source
        for name, args in _dockerfile_instructions()
        if name == "COPY" and "--from" not in args
        for source in shlex.split(args)[:-1]
    }
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert not copied & ignored
    assert all((ROOT / source).exists() for source in copied)


def test_dockerfile_python_satisfies_requires_python() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = tuple(int(p) for p in pyproject["project"]["requires-python"].removeprefix(">=").split("."))
    for name, args in _dockerfile_instructions():
        if name == "FROM":
            version = re.match(r"python:(\d+)\.(\d+)", args)
            assert version and tuple(map(int, version.groups())) >= minimum


def test_dockerfile_command_is_a_valid_gateway_command_and_health_checks_its_port() -> None:
    instructions = dict(_final_stage())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entrypoint = shlex.split(instructions["ENTRYPOINT"].strip("[]").replace(",", " "))
    assert entrypoint == ["gateway"] and "gateway" in pyproject["project"]["scripts"]
    command = [part.strip('"') for part in re.findall(r'"[^"]*"', instructions["CMD"])]
    parsed = _parser().parse_args(command)
    assert parsed.command.__name__ == "serve_command"
    assert parsed.host == "0.0.0.0"  # noqa: S104 (inside a container)
    assert f"127.0.0.1:{parsed.port}/health" in instructions["HEALTHCHECK"]
    assert f"EXPOSE {parsed.port}" in (ROOT / "Dockerfile").read_text()


def test_setup_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    """scripts/dev starts without pip (seconds, the network) unless pyproject.toml changed."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    python = tmp_path / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/../pip-calls"\n')
    python.chmod(0o755)
    script = f'set -eu; . "{ROOT}/scripts/_setup.sh"; ensure_venv "$1"'

    def ensure(extras: str) -> int:
        subprocess.run(["bash", "-c", script, "-", extras], cwd=tmp_path, check=True, capture_output=True)
        calls = tmp_path / ".venv/pip-calls"
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    assert ensure("[test]") == 2  # upgrade pip, install
    assert ensure("[test]") == 2 and ensure("") == 2  # nothing changed: no pip at all
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + "\n# changed\n")
    assert ensure("") == 4
