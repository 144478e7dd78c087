"""The manifest flow's page and redirect (``gateway.platforms.github.registration``), in process,
against the fake GitHub: the state opens the page and works once, the code is exchanged once, and
GitHub's refusals end the flow with a reason while its silence lets the browser try again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.errors import SetupFailed
from gateway.platforms.github.registration import (
    REDIRECT_PATH,
    CreatedApp,
    ManifestFlow,
    exchange_code,
    web_url,
)
from tests.fakes import GitHubFake
from tests.support.forms import Form
from tests.support.redis_server import free_port

PUBLIC = "https://gw.example.com"
LOCAL = "http://127.0.0.1:8765"


class _Setup:
    """A flow against the fake, the browser played by a TestClient, what ``save`` was given."""

    def __init__(self, gh: GitHubFake, *, ttl: float = 600, now: list[float] | None = None) -> None:
        self.gh, self.saved = gh, list[CreatedApp]()
        clock = (lambda: now[0]) if now is not None else None
        extra: dict[str, Any] = {"clock": clock} if clock else {}
        self.flow = ManifestFlow(
            PUBLIC, name="Octo", org=None, api_url=gh.base_url, save=self._save, ttl=ttl, **extra
        )
        self.browser = TestClient(Starlette(routes=self.flow.routes()), base_url=LOCAL)

    def _save(self, app: CreatedApp) -> str:
        self.saved.append(app)
        return f"saved App {app.id}"

    def form(self) -> Form:
        page = self.browser.get(f"/github/setup?state={self.flow.state}")
        assert page.status_code == 200, page.text
        form = Form(page.text)
        return form

    def create(self) -> str:
        """Press the button: GitHub creates the App and answers with the redirect (its address)."""
        form = self.form()
        answer = httpx.post(form.action, data=form.fields, timeout=5)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        return f"{location.path}?{location.query}"


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


def test_the_page_offers_the_manifest_with_the_state_and_a_redirect_back_here(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    form = setup.form()
    assert form.action == f"{gh.origin}/settings/apps/new?state={setup.flow.state}"
    manifest = json.loads(form.fields["manifest"])
    assert manifest["redirect_url"] == LOCAL + REDIRECT_PATH  # where the browser opened the page
    assert manifest["hook_attributes"]["url"] == f"{PUBLIC}/webhooks/github" and manifest["name"] == "Octo"


@pytest.mark.parametrize(
    "headers", [{"host": "gw.example.com"}, {"x-forwarded-host": "gw.example.com, proxy.internal"}]
)
def test_a_page_reached_through_the_public_url_redirects_through_it(
    gh: GitHubFake, headers: dict[str, str]
) -> None:
    setup = _Setup(gh)
    page = setup.browser.get(f"/github/setup?state={setup.flow.state}", headers=headers)
    form = Form(page.text)
    assert json.loads(form.fields["manifest"])["redirect_url"] == PUBLIC + REDIRECT_PATH


@pytest.mark.parametrize("query", ["", "?state=", "?state=guessed"])
def test_the_page_needs_this_runs_state(gh: GitHubFake, query: str) -> None:
    page = _Setup(gh).browser.get(f"/github/setup{query}")
    assert page.status_code == 404 and "<form" not in page.text


def test_the_redirect_exchanges_the_code_and_saves_the_app(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    done = setup.browser.get(setup.create())
    assert done.status_code == 200 and "saved App" in done.text
    (created,) = gh.manifests.created
    (app,) = setup.saved
    assert (app.id, app.pem, app.webhook_secret) == (created["id"], created["pem"], created["webhook_secret"])
    assert (
        app.install_url == "https://github.com/apps/octo/installations/new" and app.install_url in done.text
    )
    assert setup.flow.finished.is_set() and setup.flow.report == f"saved App {app.id}"
    assert done.headers["cache-control"] == "no-store" and done.headers["referrer-policy"] == "no-referrer"
    assert created["pem"] not in done.text and created["webhook_secret"] not in done.text


@pytest.mark.parametrize("state", ["", "guessed"])
def test_a_redirect_without_this_runs_state_saves_nothing(gh: GitHubFake, state: str) -> None:
    setup = _Setup(gh)
    path, _, _ = setup.create().partition("&state=")
    refused = setup.browser.get(f"{path}&state={state}")
    assert refused.status_code == 400 and "Nothing was saved" in refused.text
    assert setup.saved == [] and gh.calls("POST", "/app-manifests/*") == []
    assert not setup.flow.finished.is_set()  # the real redirect may still come


def test_the_state_works_once(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    redirect = setup.create()
    assert setup.browser.get(redirect).status_code == 200
    again = setup.browser.get(redirect)
    assert again.status_code == 400 and "finished already" in again.text
    assert len(setup.saved) == 1 and len(gh.calls("POST", "/app-manifests/*")) == 1


def test_an_expired_state_is_refused(gh: GitHubFake) -> None:
    now = [1000.0]
    setup = _Setup(gh, ttl=60, now=now)
    redirect = setup.create()
    now[0] += 60
    assert "expired" in setup.browser.get(redirect).text and setup.saved == []


def test_a_code_used_already_ends_the_flow_with_githubs_reason(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    redirect = setup.create()
    code = redirect.split("code=")[1].split("&")[0]
    assert httpx.post(f"{gh.base_url}/app-manifests/{code}/conversions", timeout=5).status_code == 201
    refused = setup.browser.get(redirect)
    assert refused.status_code == 400 and "used already" in refused.text
    assert setup.saved == [] and setup.flow.finished.is_set()
    assert setup.flow.error is not None and setup.flow.error.final


def test_a_code_over_an_hour_old_is_refused(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    redirect = setup.create()
    gh.clock = lambda: 10**10
    assert "over an hour ago" in setup.browser.get(redirect).text and setup.saved == []


def test_a_422_ends_the_flow_with_githubs_message(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    redirect = setup.create()
    body = {"message": "Validation Failed", "errors": [], "documentation_url": "https://docs.github.com/rest"}
    gh.fail_next("POST", "/app-manifests/*/conversions", 422, body=body)
    refused = setup.browser.get(redirect)
    assert refused.status_code == 400 and "422: Validation Failed" in refused.text
    assert setup.flow.error is not None and setup.saved == []


def test_when_github_fails_to_answer_a_reload_tries_the_code_again(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    redirect = setup.create()
    gh.fail_next("POST", "/app-manifests/*/conversions", 502)
    first = setup.browser.get(redirect)
    assert first.status_code == 502 and "Reload this page" in first.text
    assert not setup.flow.finished.is_set() and setup.flow.error is None
    assert setup.browser.get(redirect).status_code == 200 and len(setup.saved) == 1


def test_an_unreachable_github_is_not_final() -> None:
    flow = ManifestFlow(
        PUBLIC, name="Octo", org=None, api_url=f"http://127.0.0.1:{free_port()}", save=str, ttl=60
    )
    browser = TestClient(Starlette(routes=flow.routes()), base_url=LOCAL)
    answer = browser.get(f"{REDIRECT_PATH}?code=abc&state={flow.state}")
    assert answer.status_code == 502 and "did not answer" in answer.text and flow.error is None


def test_a_code_that_is_not_one_never_reaches_github(gh: GitHubFake) -> None:
    setup = _Setup(gh)
    answer = setup.browser.get(f"{REDIRECT_PATH}?code=..%2Fapp&state={setup.flow.state}")
    assert answer.status_code == 400 and gh.calls() == []


def test_an_organizations_page_posts_to_its_new_app_form(gh: GitHubFake) -> None:
    flow = ManifestFlow(PUBLIC, name="Octo", org="acme", api_url=gh.base_url, save=str, ttl=60)
    page = TestClient(Starlette(routes=flow.routes())).get(f"/github/setup?state={flow.state}")
    form = Form(page.text)
    assert form.action == f"{gh.origin}/organizations/acme/settings/apps/new?state={flow.state}"


@respx.mock
def test_an_answer_without_a_usable_key_is_refused() -> None:
    body = {"id": 9, "slug": "octo", "html_url": "https://github.com/apps/octo", "owner": {"login": "me"}}
    respx.post("https://api.github.com/app-manifests/abc/conversions").respond(201, json=body | {"pem": "x"})
    with pytest.raises(SetupFailed, match="no usable pem"):
        asyncio.run(exchange_code("https://api.github.com", "abc"))


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://github.example.com/api/v3", "https://github.example.com"),
        ("https://api.octocorp.ghe.com", "https://octocorp.ghe.com"),
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000"),
    ],
)
def test_the_form_goes_to_the_github_of_the_api_url(api: str, web: str) -> None:
    assert web_url(api) == web
