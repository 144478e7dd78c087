"""GitHub's App manifest flow, faked for ``GitHubFake``: github.com's "new App" form and the code
conversion, as https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
describes them.

- ``POST /settings/apps/new[?state=S]`` (or ``/organizations/ORG/settings/apps/new``), form field
  ``manifest`` (JSON): GitHub's page where the person names the App and presses "Create GitHub
  App". The fake does what that press does at once: it creates the App and redirects the browser
  (302) to the manifest's ``redirect_url`` with ``?code=...`` and the ``state`` it was given.
- ``POST /app-manifests/{code}/conversions`` (no authentication): 201 with the App, its
  ``pem``, ``webhook_secret``, ``client_id`` and ``client_secret``. A code converts once and only
  within an hour of the registration; after that (or for a code never issued) 404.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes import github_shapes as shapes
from tests.fakes.server import Reply, Request

CODE_LIFETIME = 3600  # "You must complete all three steps in the GitHub App Manifest flow within one hour."
MAX_NAME = 34  # GitHub: "The name cannot be longer than 34 characters"

Obj = dict[str, Any]


class ManifestApps:
    """The Apps registered from manifests and the codes not yet converted."""

    def __init__(self, ids: Iterator[int], clock: Callable[[], float]) -> None:
        self._ids, self._clock = ids, clock
        self._codes: dict[str, Obj] = {}
        self.created: list[Obj] = []  # every App made, secrets included, for tests to compare with

    def register(self, request: Request) -> Reply:
        """The "Create GitHub App" press: the App is made and the browser sent to ``redirect_url``."""
        manifest, problem = _manifest(request)
        if problem is not None:
            return Reply(422, problem)
        org = request.params.get("org")
        app = _new_app(next(self._ids), manifest, org or "fake-user", kind="Organization" if org else "User")
        self.created.append(app)
        redirect = manifest.get("redirect_url")
        if not isinstance(redirect, str) or not redirect:
            return Reply(200, f"App {app['slug']} created; no redirect_url to send the code to")
        code = secrets.token_hex(20)
        self._codes[code] = {"app": app, "issued_at": self._clock()}
        state = request.query.get("state")
        query = urlencode({"code": code} | ({"state": state} if isinstance(state, str) else {}))
        return Reply(302, b"", {"Location": f"{redirect}{'&' if '?' in redirect else '?'}{query}"})

    def convert(self, request: Request) -> tuple[Reply, Obj | None]:
        """The conversion: the App a live code stands for (the code is spent), else GitHub's 404."""
        pending = self._codes.pop(request.params["code"], None)
        if pending is None or self._clock() >= pending["issued_at"] + CODE_LIFETIME:
            body = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            return Reply(404, body | {"status": "404"}), None
        app = pending["app"]
        return Reply(201, _conversion(request.base_url, app)), app

    def reset(self) -> None:
        """Forget every App and code."""
        self._codes.clear()
        self.created.clear()


def _manifest(request: Request) -> tuple[Obj, str | None]:
    raw = request.body.get("manifest") if isinstance(request.body, dict) else None
    try:
        manifest = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        return {}, "Invalid manifest: the form field manifest must hold a JSON object"
    hook = manifest.get("hook_attributes", {})
    permissions = manifest.get("default_permissions", {})
    if not isinstance(manifest.get("url"), str) or not manifest["url"]:
        return manifest, "Invalid manifest: url is required"
    if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
        return manifest, "Invalid manifest: hook_attributes.url is required"
    if not isinstance(permissions, dict) or set(permissions.values()) - {"read", "write"}:
        return manifest, "Invalid manifest: default_permissions values are read or write"
    if not 1 <= len(str(manifest.get("name") or "x")) <= MAX_NAME:
        return manifest, f"Name is too long (maximum is {MAX_NAME} characters)"
    return manifest, None


def _new_app(app_id: int, manifest: Obj, owner: str, *, kind: str) -> Obj:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL  # GitHub's: "BEGIN RSA PRIVATE KEY"
    pem = key.private_bytes(serialization.Encoding.PEM, pkcs1, serialization.NoEncryption()).decode()
    name = str(manifest.get("name") or f"app-{app_id}")
    return {
        "id": app_id,
        "slug": re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"app-{app_id}",
        "name": name,
        "owner": owner,
        "owner_type": kind,
        "manifest": manifest,
        "pem": pem,
        "public_key": key.public_key(),
        "webhook_secret": secrets.token_hex(20) if manifest.get("hook_attributes") else None,
        "client_id": f"Iv1.{secrets.token_hex(8)}",
        "client_secret": secrets.token_hex(20),
    }


def _conversion(base: str, app: Obj) -> Obj:
    """The 201 body: the GitHub App object plus client_id, client_secret, webhook_secret and pem."""
    manifest = app["manifest"]
    body = shapes.app_obj(base, app["id"]) | {
        "slug": app["slug"],
        "name": app["name"],
        "owner": shapes.user_obj(app["owner"], base=base, kind=app["owner_type"]),
        "description": manifest.get("description") or "",
        "external_url": manifest["url"],
        "html_url": f"{shapes.WEB}/apps/{app['slug']}",
        "permissions": dict(manifest.get("default_permissions") or {}),
        "events": list(manifest.get("default_events") or []),
    }
    secrets_part = {k: app[k] for k in ("client_id", "client_secret", "webhook_secret", "pem")}
    return body | secrets_part
