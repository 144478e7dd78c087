"""The fakes' webhook-delivery and event-list endpoints, held to GitHub's and Stripe's documented rules.

GitHub's are driven with httpx (PyGithub has no App hook-delivery calls), Stripe's with
stripe-python's own list calls and auto-pagination. Each rule is in tests/fakes/README.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stripe

from gateway.platforms import github as github_inbound
from handlers.github.auth import GitHubAppAuth
from tests.e2e.support import APP_ID, APP_KEY, APP_PEM
from tests.fakes import GitHubFake, StripeFake

HOOK = "repos/acme/api/hooks/12"
SUMMARY_FIELDS = {
    "id", "guid", "delivered_at", "redelivery", "duration", "status", "status_code", "event", "action",
    "installation_id", "repository_id", "throttled_at",
}  # fmt: skip


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake(app_id=APP_ID, app_public_key=APP_KEY.public_key()) as fake:
        fake.add_hook("app")
        fake.add_hook(HOOK)
        yield fake


def _app(gh: GitHubFake) -> httpx.Client:
    jwt = GitHubAppAuth(str(APP_ID), APP_PEM, gh.base_url).app_jwt()
    return httpx.Client(base_url=gh.base_url, headers={"Authorization": f"Bearer {jwt}"}, timeout=10)


def test_github_lists_deliveries_newest_first_with_the_documented_fields(gh: GitHubFake) -> None:
    older = gh.seed_delivery("app", status_code=503, delivered_at=time.time() - 60)
    newer = gh.seed_delivery("app", status_code=200)
    with _app(gh) as client:
        items = client.get("/app/hook/deliveries").json()
    assert [item["id"] for item in items] == [newer["id"], older["id"]]
    assert set(items[0]) == SUMMARY_FIELDS
    assert (items[0]["status"], items[1]["status"]) == ("OK", "Invalid HTTP Response: 503")
    assert items[1]["delivered_at"].endswith("Z") and isinstance(items[1]["duration"], float)


def test_github_pages_deliveries_by_cursor_through_the_link_header(gh: GitHubFake) -> None:
    ids = [gh.seed_delivery("app", delivered_at=time.time() - i)["id"] for i in range(250)]
    seen: list[int] = []
    with _app(gh) as client:
        response = client.get("/app/hook/deliveries", params={"per_page": 500})
        while True:
            seen += [item["id"] for item in response.json()]
            following = response.links.get("next")
            if following is None:
                break
            query = httpx.URL(following["url"]).params
            assert "cursor" in query and "page" not in query, "cursor pagination, no page numbers"
            response = client.get(following["url"])
        assert len(client.get("/app/hook/deliveries").json()) == 30, "per_page defaults to 30"
        assert client.get("/app/hook/deliveries", params={"cursor": "bogus"}).status_code == 422
    assert seen == ids, "every delivery once, newest first, 100 a page at most"


def test_github_filters_deliveries_by_outcome_class(gh: GitHubFake) -> None:
    gh.seed_delivery("app", status_code=200)
    gh.seed_delivery("app", status_code=302)
    gh.seed_delivery("app", status_code=502)
    gh.seed_delivery("app", status_code=0, status="failed to connect")
    with _app(gh) as client:
        failures = client.get("/app/hook/deliveries", params={"status": "failure"}).json()
        successes = client.get("/app/hook/deliveries", params={"status": "success"}).json()
        assert client.get("/app/hook/deliveries", params={"status": "broken"}).status_code == 422
    assert [item["status_code"] for item in failures] == [502], "400-599 only: no answer is neither"
    assert sorted(item["status_code"] for item in successes) == [200, 302]


def test_github_app_deliveries_need_the_app_jwt_and_hook_deliveries_a_token(gh: GitHubFake) -> None:
    assert (
        httpx.get(
            f"{gh.base_url}/app/hook/deliveries", headers={"Authorization": f"token {gh.token}"}
        ).status_code
        == 401
    )
    token = {"Authorization": f"token {gh.token}"}
    assert httpx.get(f"{gh.base_url}/{HOOK}/deliveries", headers=token).status_code == 200
    assert httpx.get(f"{gh.base_url}/{HOOK}/deliveries").status_code == 401
    assert httpx.get(f"{gh.base_url}/repos/acme/api/hooks/99/deliveries", headers=token).status_code == 404


class _Receiver(ThreadingHTTPServer):
    """A webhook endpoint on 127.0.0.1 that answers ``status`` and keeps what it was sent."""

    def __init__(self, status: int) -> None:
        self.status, self.received = status, []
        super().__init__(("127.0.0.1", 0), _Receive)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/github"


class _Receive(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_github_redelivers_the_same_event_signed_and_logs_a_new_attempt(gh: GitHubFake) -> None:
    receiver = _Receiver(status=503)
    try:
        gh.add_hook("app", url=receiver.url, secret="hook-secret")
        first = gh.deliver("app", "issues", {"action": "opened", "repository": {"id": 7}})
        receiver.status = 200
        with _app(gh) as client:
            accepted = client.post(f"/app/hook/deliveries/{first['id']}/attempts")
            assert client.post("/app/hook/deliveries/1/attempts").status_code == 404
        gh.wait_for_redeliveries()
        with _app(gh) as client:
            detail = client.get(f"/app/hook/deliveries/{first['id']}").json()
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert (accepted.status_code, accepted.json()) == (202, {})
    (headers, body), (again, again_body) = receiver.received
    assert again["x-github-delivery"] == headers["x-github-delivery"] == first["guid"]
    github_inbound.verify(again_body, again, secrets=("hook-secret",), now=time.time())
    newest = gh.hook_deliveries("app")[0]
    assert (newest["guid"], newest["redelivery"], newest["status_code"]) == (first["guid"], True, 200)
    assert (first["status_code"], first["repository_id"]) == (503, 7)
    assert set(detail) == SUMMARY_FIELDS | {"url", "request", "response"}
    assert detail["request"]["payload"] == {"action": "opened", "repository": {"id": 7}}


def test_github_primary_rate_limit_is_a_403_with_remaining_zero_and_the_reset(gh: GitHubFake) -> None:
    gh.limit_requests(1, reset_in=120)
    with _app(gh) as client:
        assert client.get("/app/hook/deliveries").status_code == 200
        limited = client.get("/app/hook/deliveries")
    assert limited.status_code == 403 and "rate limit exceeded" in limited.json()["message"]
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 100 < int(limited.headers["x-ratelimit-reset"]) - time.time() <= 120


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


def _stripe(fake: StripeFake) -> stripe.StripeClient:
    return stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url}, max_network_retries=0)


def test_stripe_lists_undelivered_events_newest_first_across_pages(stripe_fake: StripeFake) -> None:
    now = int(time.time())
    pending = [
        stripe_fake.seed("event", type="invoice.paid", created=now - i, pending_webhooks=1)["id"]
        for i in range(25)
    ]
    stripe_fake.seed("event", type="invoice.paid", created=now, pending_webhooks=0)
    stripe_fake.seed("event", type="invoice.paid", created=now - 10_000, pending_webhooks=1)
    page = _stripe(stripe_fake).v1.events.list(
        params={"delivery_success": False, "created": {"gte": now - 100}, "limit": 10}
    )
    assert len(page.data) == 10 and page.has_more
    assert [event.id for event in page.auto_paging_iter()] == pending


def test_stripe_event_list_filters_by_type_and_refuses_what_stripe_refuses(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("event", type="invoice.paid")
    stripe_fake.seed("event", type="charge.failed")
    client = _stripe(stripe_fake)
    assert [e.type for e in client.v1.events.list(params={"type": "invoice.*"}).data] == ["invoice.paid"]
    assert [e.type for e in client.v1.events.list(params={"types": ["charge.failed"]}).data] == [
        "charge.failed"
    ]
    for params in ({"type": "invoice.*", "types": ["charge.failed"]}, {"limit": 101}):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.events.list(params=params)  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter"):
        client.raw_request("get", "/v1/events", colour="blue")


def test_stripe_lists_thin_events_through_next_page_url(stripe_fake: StripeFake) -> None:
    ids = [stripe_fake.seed_thin_event("v1.billing.meter.error_report_triggered")["id"] for _ in range(45)]
    stripe_fake.seed_thin_event("v1.other.event")
    listed = _stripe(stripe_fake).v2.core.events.list(
        params={
            "types": ["v1.billing.meter.error_report_triggered"],
            "created": {"gte": "2020-01-01T00:00:00Z"},
        }
    )
    assert len(listed.data) == 20 and listed.next_page_url
    assert sorted(event.id for event in listed.auto_paging_iter()) == sorted(ids)
