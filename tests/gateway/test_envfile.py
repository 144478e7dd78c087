"""Writing the settings file: what python-dotenv reads back is what was written, every other line is
kept, and files holding secrets are the owner's only (mode 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import read_env_file
from gateway.envfile import to_line, update_env_file, write_private

EXISTING = """# my settings
REDIS_URL=redis://127.0.0.1:6379/0
GITHUB_TOKEN=ghp_old
GITHUB_APP_PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----
abc
-----END RSA PRIVATE KEY-----"
GITHUB_APP_ID=1
export GATEWAY_QUEUE=mine
GITHUB_APP_ID=2"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def test_values_replace_their_lines_and_the_rest_is_kept(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(EXISTING)
    changes = update_env_file(
        env,
        {"GITHUB_APP_ID": "77", "GITHUB_WEBHOOK_SECRET": "s3cret"},
        turn_off=("GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY"),
        note="GitHub App octo",
    )
    assert dotenv_values(env, interpolate=False) == {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "GITHUB_APP_ID": "77",
        "GATEWAY_QUEUE": "mine",
        "GITHUB_WEBHOOK_SECRET": "s3cret",
    }
    text = env.read_text()
    assert text.startswith("# my settings\nREDIS_URL=")
    assert "# GITHUB_TOKEN=ghp_old\n" in text and '# abc\n# -----END RSA PRIVATE KEY-----"\n' in text
    assert text.count("GITHUB_APP_ID=") == 1 and text.endswith(
        "# GitHub App octo\nGITHUB_WEBHOOK_SECRET=s3cret\n"
    )
    assert changes.added == ("GITHUB_WEBHOOK_SECRET",)
    assert changes.replaced == {"GITHUB_APP_ID": "2"}  # the value dotenv read: the last one
    assert changes.turned_off == ("GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY")


def test_a_new_file_is_created_with_mode_0600(tmp_path: Path, loose_umask: None) -> None:
    env = tmp_path / "gateway.env"
    update_env_file(env, {"GITHUB_APP_ID": "5"})
    assert env.read_text() == "GITHUB_APP_ID=5\n" and _mode(env) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["gateway.env"]  # no temporary file left


def test_a_readable_file_is_made_the_owners_only(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    env.chmod(0o644)
    update_env_file(env, {"B": "2"})
    assert _mode(env) == 0o600 and dotenv_values(env) == {"A": "1", "B": "2"}


def test_a_symlinked_file_is_written_where_the_link_points(tmp_path: Path) -> None:
    real = tmp_path / "settings" / "gateway.env"
    real.parent.mkdir()
    real.write_text("A=1\n")
    (tmp_path / ".env").symlink_to(real)
    update_env_file(tmp_path / ".env", {"B": "2"})
    assert (tmp_path / ".env").is_symlink() and dotenv_values(real) == {"A": "1", "B": "2"}


@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00\r"), max_size=40))
def test_every_value_reads_back_as_written(value: str) -> None:
    from io import StringIO

    assert dotenv_values(stream=StringIO(to_line("NAME", value)), interpolate=False) == {"NAME": value}


def test_plain_values_are_unquoted_for_docker_env_files() -> None:
    assert to_line("GITHUB_APP_ID", "123") == "GITHUB_APP_ID=123\n"
    assert to_line("P", "keys/github-app-1.private-key.pem") == "P=keys/github-app-1.private-key.pem\n"
    assert to_line("P", "my keys/a.pem") == "P='my keys/a.pem'\n"


def test_write_private_makes_a_0600_file_and_never_replaces_one(tmp_path: Path, loose_umask: None) -> None:
    key = tmp_path / "key.pem"
    write_private(key, "-----BEGIN-----\n")
    assert key.read_text() == "-----BEGIN-----\n" and _mode(key) == 0o600
    with pytest.raises(FileExistsError):
        write_private(key, "other")
    assert key.read_text() == "-----BEGIN-----\n"


def test_read_env_file_keeps_the_file_apart_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "s.env").write_text("A=file\nB=file\n")
    environ = {"GATEWAY_ENV_FILE": str(tmp_path / "s.env"), "B": "env"}
    settings = read_env_file(environ)
    assert settings.path == tmp_path / "s.env" and settings.values == {"A": "file", "B": "file"}
    assert settings.merged() == {"A": "file", "B": "env", "GATEWAY_ENV_FILE": str(tmp_path / "s.env")}
    assert read_env_file({"GATEWAY_ENV_FILE": str(tmp_path / "none")}).values == {}
