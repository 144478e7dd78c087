"""GitHub's webhook delivery logs for the fake: list deliveries, get one, redeliver one.

One log per hook: the GitHub App's (``"app"``, JWT auth) and repository or organization webhooks
(``"repos/<owner>/<repo>/hooks/<id>"``, ``"orgs/<org>/hooks/<id>"``, token auth), as in
https://docs.github.com/en/rest/apps/webhooks, /rest/repos/webhooks and /rest/orgs/webhooks.
A hook given a ``url`` and ``secret`` really delivers: it POSTs the signed payload there, as
GitHub does, and logs the attempt with the answer's status. The rules each endpoint enforces
are listed in ``tests/fakes/README.md`` ("GitHub webhook deliveries").
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes import github_shapes as shapes
from tests.fakes.server import Reply, Request, Route, route

Obj = dict[str, Any]

DELIVERY_TIMEOUT = 10.0  # GitHub gives a receiver 10 seconds
_MAX_PER_PAGE = 100
_CURSOR_PREFIX = "v1_"


def _error(status: int, message: str) -> Reply:
    return Reply(
        status,
        {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)},
    )


@dataclass
class _Hook:
    """One hook: where it delivers and its log of attempts (newest last)."""

    key: str
    hook_id: int
    url: str | None = None
    secret: str | None = None
    target_type: str = "repository"
    target_id: int = 1
    attempts: list[Obj] = field(default_factory=list)


class HookDeliveries:
    """Mixin for ``GitHubFake``: hooks, their delivery logs, and the deliveries endpoints.

    Needs the host fake's ``_cond`` (its lock) and ``_check_jwt`` (App authentication).
    """

    _cond: threading.Condition
    _hooks: dict[str, _Hook]

    def _init_hooks(self) -> None:
        self._hooks = {}
        self._hooks_attempt_ids = itertools.count(12_345_000)
        self._hooks_redelivering: list[threading.Thread] = []
        self._hooks_budget: tuple[int, float] | None = None  # (requests left, reset time)

    def hook_routes(self) -> Iterable[Route]:
        """List, get and redeliver, for the App's hook and for repository and organization hooks."""
        app = "/app/hook/deliveries"
        yield route("GET", app, self._deliveries_list_app, public=True)
        yield route("GET", app + "/{delivery_id}", self._deliveries_get_app, public=True)
        yield route("POST", app + "/{delivery_id}/attempts", self._deliveries_redeliver_app, public=True)
        for owner in ("/repos/{owner}/{repo}", "/orgs/{org}"):
            hook = owner + "/hooks/{hook_id}/deliveries"
            yield route("GET", hook, self._deliveries_list_hook)
            yield route("GET", hook + "/{delivery_id}", self._deliveries_get_hook)
            yield route("POST", hook + "/{delivery_id}/attempts", self._deliveries_redeliver_hook)

    # -- seeding and inspection ------------------------------------------------------------------

    def add_hook(self, key: str, *, url: str | None = None, secret: str | None = None) -> None:
        """Make hook ``key`` exist (``"app"``, ``"repos/o/r/hooks/12"``, ``"orgs/o/hooks/7"``)."""
        kind = "integration" if key == "app" else "repository" if key.startswith("repos/") else "organization"
        hook_id = 1 if key == "app" else int(key.rsplit("/", 1)[1])
        with self._cond:
            self._hooks[key] = _Hook(key, hook_id, url, secret, kind)

    def deliver(self, hook: str, event: str, payload: Obj, *, guid: str | None = None) -> Obj:
        """Deliver ``payload`` as GitHub would (POST to the hook's url) and log the attempt."""
        with self._cond:
            target = self._hooks[hook]
        attempt = _attempt_of(guid or str(uuid.uuid4()), event, payload, redelivery=False)
        return self._hooks_send(target, attempt)

    def seed_delivery(
        self, hook: str, *, event: str = "issues", status_code: int = 503, **fields: Any
    ) -> Obj:
        """Log an attempt without sending it; ``fields``: ``guid``, ``action``, ``delivered_at`` (epoch)..."""
        payload = fields.pop("payload", {"action": fields.get("action", "opened")})
        attempt = _attempt_of(fields.pop("guid", None) or str(uuid.uuid4()), event, payload, redelivery=False)
        attempt.update({"status_code": status_code, "status": _status_text(status_code), **fields})
        with self._cond:
            return self._hooks_log(self._hooks[hook], attempt)

    def hook_deliveries(self, hook: str) -> list[Obj]:
        """The hook's attempts, newest first, as the list endpoint returns them (plus ``payload``)."""
        with self._cond:
            return copy.deepcopy(_newest_first(self._hooks[hook].attempts))

    def redeliveries(self, hook: str) -> list[Obj]:
        """Attempts made by ``POST .../attempts`` (``requested_from``: the id redelivered), oldest first."""
        with self._cond:
            return copy.deepcopy([a for a in self._hooks[hook].attempts if "requested_from" in a])

    def wait_for_redeliveries(self, timeout: float = DELIVERY_TIMEOUT + 5) -> None:
        """Block until every redelivery asked for so far has been sent and logged."""
        for thread in list(self._hooks_redelivering):
            thread.join(timeout)

    def limit_requests(self, remaining: int, *, reset_in: float = 3600.0) -> None:
        """Allow ``remaining`` more calls to the deliveries endpoints, then 403 until the reset."""
        with self._cond:
            self._hooks_budget = (remaining, time.time() + reset_in)

    def lift_rate_limit(self) -> None:
        """The reset time came: the deliveries endpoints answer again."""
        with self._cond:
            self._hooks_budget = None

    def reset_hooks(self) -> None:
        """Forget hooks, their logs and the rate-limit budget (called under the lock)."""
        self._hooks.clear()
        self._hooks_budget = None

    # -- endpoints -------------------------------------------------------------------------------

    def _deliveries_list_app(self, request: Request) -> Reply:
        return self._hooks_app_guard(request) or self._hooks_list(request, "app")

    def _deliveries_get_app(self, request: Request) -> Reply:
        return self._hooks_app_guard(request) or self._hooks_get(request, "app")

    def _deliveries_redeliver_app(self, request: Request) -> Reply:
        return self._hooks_app_guard(request) or self._hooks_redeliver(request, "app")

    def _deliveries_list_hook(self, request: Request) -> Reply:
        return self._hooks_spend() or self._hooks_list(request, _hook_key(request))

    def _deliveries_get_hook(self, request: Request) -> Reply:
        return self._hooks_spend() or self._hooks_get(request, _hook_key(request))

    def _deliveries_redeliver_hook(self, request: Request) -> Reply:
        return self._hooks_spend() or self._hooks_redeliver(request, _hook_key(request))

    def _hooks_app_guard(self, request: Request) -> Reply | None:
        denied: Reply | None = self._check_jwt(request)  # type: ignore[attr-defined]
        return denied or self._hooks_spend()

    def _hooks_list(self, request: Request, key: str) -> Reply:
        hook = self._hooks.get(key)
        if hook is None:
            return _error(404, "Not Found")
        per_page = _per_page(request.query.get("per_page"))
        status = _one(request.query.get("status"))
        if per_page is None or status not in (None, "success", "failure"):
            return _error(422, "Validation Failed")
        items = [
            a for a in _newest_first(hook.attempts) if _matches(a, status, request.query.get("redelivery"))
        ]
        start = _cursor_index(items, _one(request.query.get("cursor")))
        if start is None:
            return _error(422, "Validation Failed: cursor is not a delivery cursor")
        chunk = items[start : start + per_page]
        headers = {}
        if start + per_page < len(items):
            others = {k: v for k, v in request.query.items() if k != "cursor"}
            query = "&".join(f"{k}={_one(v)}" for k, v in others.items())
            next_cursor = f"{_CURSOR_PREFIX}{items[start + per_page]['id']}"
            headers["Link"] = f'<{request.base_url}{request.path}?{query}&cursor={next_cursor}>; rel="next"'
        return Reply(200, [_summary(a) for a in chunk], headers)

    def _hooks_get(self, request: Request, key: str) -> Reply:
        found = self._hooks_find(key, request.params["delivery_id"])
        if found is None:
            return _error(404, "Not Found")
        return Reply(200, _detail(found[1], found[0]))

    def _hooks_redeliver(self, request: Request, key: str) -> Reply:
        found = self._hooks_find(key, request.params["delivery_id"])
        if found is None:
            return _error(404, "Not Found")
        hook, original = found
        attempt = _attempt_of(original["guid"], original["event"], original["payload"], redelivery=True)
        attempt["requested_from"] = original["id"]
        thread = threading.Thread(target=self._hooks_send, args=(hook, attempt), daemon=True)
        self._hooks_redelivering.append(thread)
        thread.start()
        return Reply(202, {})

    def _hooks_find(self, key: str, delivery_id: str) -> tuple[_Hook, Obj] | None:
        hook = self._hooks.get(key)
        if hook is None or not delivery_id.isdigit():
            return None
        attempt = next((a for a in hook.attempts if a["id"] == int(delivery_id)), None)
        return None if attempt is None else (hook, attempt)

    def _hooks_spend(self) -> Reply | None:
        """GitHub's primary rate limit: 403 with ``x-ratelimit-remaining: 0`` once the budget is spent."""
        if self._hooks_budget is None:
            return None
        left, reset = self._hooks_budget
        if reset <= time.time():
            self._hooks_budget = None
            return None
        headers = {"X-RateLimit-Remaining": str(max(left - 1, 0)), "X-RateLimit-Reset": str(int(reset))}
        if left <= 0:
            reply = _error(403, "API rate limit exceeded for installation ID 1.")
            reply.headers.update(headers)
            return reply
        self._hooks_budget = (left - 1, reset)
        return None

    # -- delivering ------------------------------------------------------------------------------

    def _hooks_send(self, hook: _Hook, attempt: Obj) -> Obj:
        """POST the attempt to the hook's url (outside the lock), then log what came back."""
        started = time.monotonic()
        if hook.url is None:
            attempt.update(status_code=200, status="OK")
        else:
            attempt.update(_post(hook, attempt))
        attempt["duration"] = round(time.monotonic() - started, 3)
        with self._cond:
            return copy.deepcopy(self._hooks_log(hook, attempt))

    def _hooks_log(self, hook: _Hook, attempt: Obj) -> Obj:
        attempt.setdefault("delivered_at", time.time())
        attempt["id"] = next(self._hooks_attempt_ids)
        attempt["installation_id"] = hook.target_id if hook.key == "app" else None
        hook.attempts.append(attempt)
        return attempt


def _attempt_of(guid: str, event: str, payload: Obj, *, redelivery: bool) -> Obj:
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    repository = payload.get("repository")
    repository_id = repository.get("id") if isinstance(repository, dict) else None
    return {
        "guid": guid,
        "event": event,
        "action": action,
        "redelivery": redelivery,
        "repository_id": repository_id,
        "throttled_at": None,
        "payload": copy.deepcopy(payload),
    }


def _post(hook: _Hook, attempt: Obj) -> Obj:
    body = json.dumps(attempt["payload"]).encode()
    signature = hmac.new((hook.secret or "").encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": attempt["event"],
        "X-GitHub-Delivery": attempt["guid"],
        "X-GitHub-Hook-ID": str(hook.hook_id),
        "X-GitHub-Hook-Installation-Target-ID": str(hook.target_id),
        "X-GitHub-Hook-Installation-Target-Type": hook.target_type,
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    try:
        response = httpx.post(str(hook.url), content=body, headers=headers, timeout=DELIVERY_TIMEOUT)
    except httpx.TimeoutException:
        return {"status_code": 0, "status": "timed out"}
    except httpx.TransportError:
        return {"status_code": 0, "status": "failed to connect"}
    return {"status_code": response.status_code, "status": _status_text(response.status_code)}


def _status_text(code: int) -> str:
    return "OK" if 200 <= code < 300 else f"Invalid HTTP Response: {code}" if code else "failed to connect"


def _summary(attempt: Obj) -> Obj:
    """A "Simple webhook delivery" (``hook-delivery-item``): every required field, in GitHub's types."""
    names = ("id", "guid", "redelivery", "duration", "status", "status_code", "event", "action")
    fields = {name: attempt.get(name) for name in names} | {"duration": float(attempt.get("duration") or 0)}
    fields |= {
        "installation_id": attempt.get("installation_id"),
        "repository_id": attempt.get("repository_id"),
    }
    return fields | {
        "delivered_at": shapes.iso(attempt["delivered_at"]),
        "throttled_at": attempt.get("throttled_at"),
    }


def _detail(attempt: Obj, hook: _Hook) -> Obj:
    """A "Webhook delivery" (``hook-delivery``): the summary, the url, the request and the response."""
    request = {
        "headers": {"X-GitHub-Delivery": attempt["guid"], "X-GitHub-Event": attempt["event"]},
        "payload": attempt["payload"],
    }
    response = {"headers": {}, "payload": None}
    return _summary(attempt) | {"url": hook.url or "", "request": request, "response": response}


def _newest_first(attempts: list[Obj]) -> list[Obj]:
    return sorted(attempts, key=lambda a: (a["delivered_at"], a["id"]), reverse=True)


def _matches(attempt: Obj, status: str | None, redelivery: Any) -> bool:
    code = int(attempt.get("status_code") or 0)
    if status == "success" and not 200 <= code <= 399:
        return False
    if status == "failure" and not 400 <= code <= 599:
        return False
    wanted = _one(redelivery)
    return wanted is None or (wanted == "true") == bool(attempt["redelivery"])


def _cursor_index(items: list[Obj], cursor: str | None) -> int | None:
    if cursor is None:
        return 0
    if not cursor.startswith(_CURSOR_PREFIX) or not cursor[len(_CURSOR_PREFIX) :].isdigit():
        return None
    wanted = int(cursor[len(_CURSOR_PREFIX) :])
    # The cursor names the first delivery of its page: newer ones arriving since do not shift it.
    return next((i for i, item in enumerate(items) if item["id"] == wanted), None)


def _per_page(value: Any) -> int | None:
    text = _one(value)
    if text is None:
        return 30
    return min(int(text), _MAX_PER_PAGE) if text.isdigit() and int(text) > 0 else None


def _one(value: Any) -> str | None:
    return value[-1] if isinstance(value, list) else value


def _hook_key(request: Request) -> str:
    params = request.params
    owner = f"repos/{params['owner']}/{params['repo']}" if "repo" in params else f"orgs/{params['org']}"
    return f"{owner}/hooks/{params['hook_id']}"
