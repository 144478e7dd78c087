"""The fake's App manifest flow keeps GitHub's rules: the form redirects with a code and the state,
a code converts once and within an hour, and the App made can then authenticate with its key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from github import Auth, GithubIntegration

from tests.fakes import GitHubFake

MANIFEST = {
    "name": "Octo App",
    "url": "https://gw.example.com",
    "hook_attributes": {"url": "https://gw.example.com/webhooks/github"},
    "redirect_url": "https://gw.example.com/github/setup/redirect",
    "default_permissions": {"issues": "write", "metadata": "read"},
    "default_events": ["issues"],
}


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


def _register(
    gh: GitHubFake, manifest: Any = MANIFEST, *, page: str = "/settings/apps/new?state=s1"
) -> httpx.Response:
    form = {"manifest": manifest if isinstance(manifest, str) else json.dumps(manifest)}
    return httpx.post(gh.origin + page, data=form, timeout=5)


def _code(response: httpx.Response) -> str:
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


def _convert(gh: GitHubFake, code: str) -> httpx.Response:
    return httpx.post(f"{gh.base_url}/app-manifests/{code}/conversions", timeout=5)


def test_the_form_redirects_to_the_redirect_url_with_a_code_and_the_state(gh: GitHubFake) -> None:
    response = _register(gh)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == MANIFEST["redirect_url"]
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and len(query["code"][0]) == 40


def test_a_code_converts_once_into_the_app_and_its_secrets(gh: GitHubFake) -> None:
    code = _code(_register(gh, page="/organizations/acme/settings/apps/new"))
    first, second = _convert(gh, code), _convert(gh, code)
    assert first.status_code == 201 and second.status_code == 404
    assert second.json()["message"] == "Not Found"
    body, (created,) = first.json(), gh.manifests.created
    assert body["id"] == created["id"] and body["owner"]["login"] == "acme"
    assert body["pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert body["webhook_secret"] == created["webhook_secret"] and body["client_secret"]
    assert body["html_url"] == "https://github.com/apps/octo-app"


def test_a_code_expires_an_hour_after_the_registration(gh: GitHubFake) -> None:
    code = _code(_register(gh))
    gh.clock = lambda: time.time() + 3600
    assert _convert(gh, code).status_code == 404


@pytest.mark.parametrize(
    "manifest",
    [
        "not json",
        {**MANIFEST, "url": ""},
        {**MANIFEST, "hook_attributes": {"active": True}},
        {**MANIFEST, "default_permissions": {"issues": "admin"}},
        {**MANIFEST, "name": "x" * 35},
    ],
)
def test_a_manifest_github_refuses_makes_no_app(gh: GitHubFake, manifest: Any) -> None:
    assert _register(gh, manifest).status_code == 422
    assert gh.manifests.created == []


def test_the_converted_app_authenticates_with_its_key(gh: GitHubFake) -> None:
    body = _convert(gh, _code(_register(gh))).json()
    integration = GithubIntegration(auth=Auth.AppAuth(body["id"], body["pem"]), base_url=gh.base_url)
    token = integration.get_access_token(77).token
    assert token.startswith("ghs_") and gh.issued_tokens[0]["installation_id"] == 77
