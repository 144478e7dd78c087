"""``gateway setup github`` as a user runs it: the real command in its own process, its page in a
real browser, GitHub played by the fake (its "new App" form and the code conversion). The App's
id, key and webhook secret land where the settings read them, mode 0600, and never in the output."""

from __future__ import annotations

import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from dotenv import dotenv_values

from gateway.config import Settings, read_env_file
from handlers.config import WorkerSettings
from handlers.github.auth import GitHubAppAuth
from tests.fakes import GitHubFake
from tests.support.forms import Form
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "https://gw.example.com"
EXISTING = "# mine\nREDIS_URL=redis://127.0.0.1:6390/0\n"


class _Setup:
    """``gateway setup github`` running in its own process; its output read as it comes."""

    def __init__(self, gh: GitHubFake, env_file: Path, *args: str, **environ: str) -> None:
        own = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SLACK_", "STRIPE_"))}
        env = own | {"GITHUB_API_URL": gh.base_url, "GATEWAY_ENV_FILE": str(env_file)} | environ
        command = [sys.executable, "-m", "gateway.cli", "setup", "github", *args]
        self.process = subprocess.Popen(
            command, cwd=env_file.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.out: list[str] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def page_url(self) -> str:
        """The page address the command printed."""
        while line := self._lines.get(timeout=30):
            self.out.append(line)
            if "/github/setup?state=" in line:
                return line.strip()
        raise AssertionError(f"no page address printed: {self.finish()}")

    def finish(self) -> tuple[int, str, str]:
        """The exit code, everything printed on stdout, and stderr."""
        code = self.process.wait(timeout=60)
        while line := self._lines.get(timeout=10):
            self.out.append(line)
        assert self.process.stderr is not None
        return code, "".join(self.out), self.process.stderr.read()


def _press_create(url: str) -> tuple[httpx.Client, str]:
    """A browser opening the page and pressing its button: GitHub's redirect, not yet followed."""
    browser = httpx.Client(timeout=10)
    form = Form(browser.get(url).text)
    answer = browser.post(form.action, data=form.fields)
    assert answer.status_code == 302, answer.text
    return browser, answer.headers["location"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(EXISTING)
    return path


def test_the_page_in_a_browser_creates_the_app_and_its_settings_are_written(
    gh: GitHubFake, env_file: Path, page: Any
) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC)
    page.goto(setup.page_url())
    page.click("button")
    page.wait_for_selector("h1:has-text('Saved')", timeout=20_000)
    code, out, err = setup.finish()
    assert code == 0, err
    (app,) = gh.manifests.created
    key_file = env_file.parent / f"github-app-{app['id']}.private-key.pem"
    assert dotenv_values(env_file) == {
        "REDIS_URL": "redis://127.0.0.1:6390/0",
        "GITHUB_APP_ID": str(app["id"]),
        "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file),
        "GITHUB_WEBHOOK_SECRET": app["webhook_secret"],
    }
    assert env_file.read_text().startswith(EXISTING) and key_file.read_text() == app["pem"]
    assert _mode(env_file) == _mode(key_file) == 0o600
    assert app["manifest"]["hook_attributes"]["url"] == f"{PUBLIC}/webhooks/github"
    assert (
        f"install the App on your repositories: https://github.com/apps/{app['slug']}/installations/new"
        in out
    )
    for secret in (app["webhook_secret"], app["client_secret"], *app["pem"].splitlines()[1:-1]):
        assert secret not in out + err + page.content()


def test_the_written_settings_are_the_ones_the_gateway_and_worker_run_with(
    gh: GitHubFake, env_file: Path
) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC)
    browser, redirect = _press_create(setup.page_url())
    assert browser.get(redirect).status_code == 200
    assert setup.finish()[0] == 0
    (app,) = gh.manifests.created
    environ = read_env_file({"GATEWAY_ENV_FILE": str(env_file)}).merged()
    assert Settings.from_environ(environ).signing_secrets("github") == (app["webhook_secret"],)
    github = WorkerSettings.from_environ(environ | {"GITHUB_API_URL": gh.base_url}).github
    assert github.is_app and github.app_private_key is not None
    token = GitHubAppAuth(str(github.app_id), github.app_private_key, gh.base_url).installation_token(77)
    assert token.startswith("ghs_")  # the key written is the App's own


def test_redirects_without_the_state_are_refused_and_the_real_one_still_works(
    gh: GitHubFake, env_file: Path
) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC)
    browser, redirect = _press_create(setup.page_url())
    without_state, _, _ = redirect.partition("&state=")
    assert browser.get(without_state).status_code == 400
    assert browser.get(without_state + "&state=forged").status_code == 400
    assert env_file.read_text() == EXISTING
    assert browser.get(redirect).status_code == 200
    code, _, err = setup.finish()
    assert code == 0 and err.count("refused a redirect") == 2


def test_a_code_used_already_fails_and_writes_nothing(gh: GitHubFake, env_file: Path) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC)
    browser, redirect = _press_create(setup.page_url())
    code_value = dict(pair.split("=") for pair in urlsplit(redirect).query.split("&"))["code"]
    assert httpx.post(f"{gh.base_url}/app-manifests/{code_value}/conversions").status_code == 201
    assert browser.get(redirect).status_code == 400
    code, _, err = setup.finish()
    assert code == 1 and "it was used already" in err
    assert env_file.read_text() == EXISTING and sorted(p.name for p in env_file.parent.iterdir()) == [".env"]


def test_settings_of_an_earlier_app_stay_unless_replace_is_given(gh: GitHubFake, env_file: Path) -> None:
    env_file.write_text(
        EXISTING + "GITHUB_APP_ID=111\nGITHUB_WEBHOOK_SECRET=old-secret\nGITHUB_TOKEN=ghp_x\n"
    )
    before = env_file.read_text()
    code, out, err = _Setup(gh, env_file, "--url", PUBLIC).finish()
    assert code == 2 and out == "" and env_file.read_text() == before
    assert "GITHUB_APP_ID=111, GITHUB_WEBHOOK_SECRET, GITHUB_TOKEN): pass --replace" in err
    assert "old-secret" not in err and "ghp_x" not in err

    setup = _Setup(gh, env_file, "--url", PUBLIC, "--replace", GITHUB_WEBHOOK_SECRET="from-the-shell")
    browser, redirect = _press_create(setup.page_url())
    assert browser.get(redirect).status_code == 200
    code, out, _ = setup.finish()
    assert code == 0
    values = dotenv_values(env_file)
    assert values["GITHUB_APP_ID"] == str(gh.manifests.created[0]["id"]) and "GITHUB_TOKEN" not in values
    assert "# GITHUB_TOKEN=ghp_x" in env_file.read_text()
    assert "replaced what" in out and "GITHUB_APP_ID (was 111), GITHUB_WEBHOOK_SECRET" in out
    assert "commented out, as an App takes their place: GITHUB_TOKEN" in out
    assert "environment sets GITHUB_WEBHOOK_SECRET" in out and "old-secret" not in out


def test_an_organizations_app_is_registered_under_it(gh: GitHubFake, env_file: Path) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC, "--org", "acme", "--name", "Acme Agent")
    browser, redirect = _press_create(setup.page_url())
    assert browser.get(redirect).status_code == 200
    code, out, _ = setup.finish()
    assert code == 0 and 'GitHub App "Acme Agent"' in out and "created for acme" in out
    assert gh.calls("POST", "/organizations/acme/settings/apps/new")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "gw.example.com"], "--url must be"),
        (["--url", PUBLIC, "--org", "acme/evil"], "--org must be"),
        (["--url", PUBLIC, "--name", "x" * 35], "--name must be"),
        (["--url", PUBLIC, "--port", "99999"], "between 1 and 65535"),
        (["--org", "acme"], "--url"),
    ],
)
def test_usage_errors_exit_2_before_anything_starts(
    gh: GitHubFake, env_file: Path, args: list[str], message: str
) -> None:
    code, out, err = _Setup(gh, env_file, *args).finish()
    assert code == 2 and message in err and out == ""
    assert env_file.read_text() == EXISTING


def test_no_answer_in_time_exits_1_and_writes_nothing(gh: GitHubFake, env_file: Path) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC, "--timeout", "1")
    setup.page_url()
    code, _, err = setup.finish()
    assert code == 1 and "did not send the browser back within 1 s: nothing was written" in err
    assert env_file.read_text() == EXISTING


def test_ctrl_c_stops_it_and_nothing_is_written(gh: GitHubFake, env_file: Path) -> None:
    setup = _Setup(gh, env_file, "--url", PUBLIC)
    setup.page_url()
    setup.process.send_signal(signal.SIGINT)
    code, _, err = setup.finish()
    assert code == 1 and "stopped before GitHub sent the browser back: nothing was written" in err
    assert env_file.read_text() == EXISTING


def test_a_port_in_use_exits_1(gh: GitHubFake, env_file: Path) -> None:
    import socket

    with socket.socket() as taken:
        port = free_port()
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, _, err = _Setup(gh, env_file, "--url", PUBLIC, "--port", str(port)).finish()
    assert code == 1 and f"127.0.0.1:{port} is not available" in err
