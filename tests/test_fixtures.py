"""The recorded deliveries in ``fixtures/`` are complete, consistent and hold no secrets.

These tests read only the corpus (and, where present, the upstream examples it was built from);
they never import the gateway, so ``expect.json`` stays an independent check of it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PLATFORMS = ("slack", "github", "stripe")

# Where the upstream examples the GitHub and Stripe bodies were built from live (fixtures/README.md).
UPSTREAM = Path(
    os.environ.get(
        "PLATFORM_PAYLOADS_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "platform-payloads",
    )
)

SIGNATURE_HEADERS = {
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-hub-signature",
    "x-hub-signature-256",
    "stripe-signature",
}
USER_AGENTS = {
    "slack": re.compile(r"Slackbot 1\.0 \(\+https://api\.slack\.com/robots\)"),
    "github": re.compile(r"GitHub-Hookshot/[0-9a-f]{7}"),
    "stripe": re.compile(r"Stripe/1\.0 \(\+https://stripe\.com/docs/webhooks\)"),
}
GITHUB_HEADERS = (
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
)
TOKEN = re.compile(rb"xox[bpas]-\d|gh[pousr]_[A-Za-z0-9]{20,}|sk_live_|rk_live_|whsec_[A-Za-z0-9]{20,}")
EXPECT_KEYS = {"status", "delivery_id", "job_id", "event", "action", "kind"}
HANDSHAKES = {("slack", "url_verification"), ("slack", "ssl_check"), ("github", "ping")}

MINIMUM = {"slack": 8, "github": 12, "stripe": 10}
REQUIRED = {
    "slack": {
        "app_mention",
        "app_mention.thread",
        "app_mention.retry",
        "message.im",
        "url_verification",
        "ssl_check",
        "slash_command",
        "slash_command.payload-word",
        "block_actions",
        "block_actions.feedback",
        "view_submission",
        "shortcut",
        "app_home_opened",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    },
    "github": {
        "ping.with-app_id",
        "issues.opened",
        "issues.labeled",
        "issue_comment.created",
        "issue_comment.created.pull-request",
        "pull_request.opened",
        "pull_request.synchronize",
        "pull_request.closed",
        "pull_request_review.submitted",
        "pull_request_review_comment.created",
        "push",
        "push.form",
        "check_run.rerequested",
        "check_suite.requested",
        "installation.created",
        "release.published",
        "workflow_run.completed",
    },
    "stripe": {
        "charge.failed",
        "charge.dispute.created",
        "charge.succeeded",
        "checkout.session.completed",
        "customer.subscription.deleted",
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_failed",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed.connect",
        "v1.billing.meter.error_report_triggered",
        "invoice.payment_failed.endive",
        "customer.subscription.updated.endive",
    },
}

# Fixtures built from another upstream example than their own name; derived ones add one key.
GITHUB_SOURCE = {
    "push.form": "push",
    "issue_comment.created.pull-request": "issue_comment.created",
}
STRIPE_SOURCE = {"payment_intent.payment_failed.connect": "payment_intent.payment_failed"}
# Written for this project in the API version the worker pins (no upstream example is that new).
STRIPE_WRITTEN = {"invoice.payment_failed.endive", "customer.subscription.updated.endive"}
PINNED_STRIPE_VERSION = "2026-10-28.endive"  # handlers/stripe/client.py API_VERSION


def _cases() -> list[tuple[str, str]]:
    return sorted(
        (platform, body.name.removesuffix(".body"))
        for platform in PLATFORMS
        for body in (FIXTURES / platform).glob("*.body")
    )


CASES = _cases()
CASE_IDS = [f"{platform}/{name}" for platform, name in CASES]


def _escape(delivery_id: str) -> str:
    """The job-id escaping of docs/internals.md, written again here on purpose."""
    keep = re.compile(rb"[A-Za-z0-9-]")
    return "".join(chr(b) if keep.fullmatch(bytes([b])) else f"_{b:02x}" for b in delivery_id.encode())


def _load(platform: str, name: str) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    folder = FIXTURES / platform
    body = (folder / f"{name}.body").read_bytes()
    headers = json.loads((folder / f"{name}.headers.json").read_text())
    expect = json.loads((folder / f"{name}.expect.json").read_text())
    return body, headers, expect


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _is_form(headers: dict[str, str]) -> bool:
    content_type = _header(headers, "Content-Type") or ""
    return content_type.split(";")[0].strip() == "application/x-www-form-urlencoded"


def _form(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode("utf-8"), strict_parsing=True, keep_blank_values=True)
    assert all(len(values) == 1 for values in fields.values()), fields
    return {key: values[0] for key, values in fields.items()}


def _json_payload(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The JSON a body carries: the body itself, or the ``payload`` field of a form body."""
    if _is_form(headers):
        data: dict[str, Any] = json.loads(_form(body)["payload"])
    else:
        data = json.loads(body)
    return data


def _slack_names(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    if not _is_form(headers):
        data = json.loads(body)
        if data["type"] == "url_verification":
            return {"delivery_id": None, "event": "url_verification", "action": None, "kind": "event"}
        event = data["event"]["type"]
        if event == "message":
            event = f"message.{data['event']['channel_type']}"
        return {"delivery_id": data["event_id"], "event": event, "action": None, "kind": "event"}
    form = _form(body)
    if "ssl_check" in form:
        return {"delivery_id": None, "event": "ssl_check", "action": None, "kind": "command"}
    if "payload" not in form:
        return {
            "delivery_id": form["trigger_id"],
            "event": "slash_command",
            "action": form["command"],
            "kind": "command",
        }
    payload = json.loads(form["payload"])
    if payload["type"] == "block_actions":
        action = payload["actions"][0]["action_id"]
    elif payload["type"] == "view_submission":
        action = payload["view"]["callback_id"]
    else:
        action = payload["callback_id"]
    return {
        "delivery_id": payload["trigger_id"],
        "event": payload["type"],
        "action": action,
        "kind": "interactive",
    }


def _names(platform: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """Delivery id, event, action and kind as the contract derives them from the delivery."""
    if platform == "slack":
        return _slack_names(body, headers)
    data = _json_payload(body, headers)
    if platform == "github":
        return {
            "delivery_id": _header(headers, "X-GitHub-Delivery"),
            "event": _header(headers, "X-GitHub-Event"),
            "action": data.get("action"),
            "kind": "form" if _is_form(headers) else "json",
        }
    kind = {"event": "snapshot", "v2.core.event": "thin"}[data["object"]]
    return {"delivery_id": data["id"], "event": data["type"], "action": None, "kind": kind}


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def test_every_fixture_file_belongs_to_a_complete_delivery() -> None:
    """Each .body has its .headers.json and .expect.json, and nothing else lies around."""
    suffixes = (".body", ".headers.json", ".expect.json")
    for platform in PLATFORMS:
        names = {name for p, name in CASES if p == platform}
        files = {f.name for f in (FIXTURES / platform).iterdir()}
        assert files == {f"{name}{suffix}" for name in names for suffix in suffixes}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_has_the_required_coverage(platform: str) -> None:
    names = {name for p, name in CASES if p == platform}
    assert len(names) >= MINIMUM[platform]
    assert REQUIRED[platform] <= names, REQUIRED[platform] - names


@pytest.mark.parametrize(("platform", "name"), CASES, ids=CASE_IDS)
def test_headers_are_unsigned_and_name_the_sender(platform: str, name: str) -> None:
    _, headers, _ = _load(platform, name)
    assert all(isinstance(v, str) for v in headers.values())
    assert not SIGNATURE_HEADERS & {k.lower() for k in headers}
    assert _header(headers, "Content-Length") is None
    assert _header(headers, "Content-Type")
    assert USER_AGENTS[platform].fullmatch(_header(headers, "User-Agent") or "")
    if platform == "github":
        assert all(_header(headers, h) for h in GITHUB_HEADERS)


@pytest.mark.parametrize(("platform", "name"), CASES, ids=CASE_IDS)
def test_body_parses_as_its_content_type(platform: str, name: str) -> None:
    body, headers, _ = _load(platform, name)
    assert not body.endswith(b"\n")
    if not _is_form(headers):
        assert (_header(headers, "Content-Type") or "").startswith("application/json")
        assert isinstance(json.loads(body), dict)
        return
    form = _form(body)
    assert b" " not in body
    if "payload" in form:
        assert list(form) == ["payload"]
        assert isinstance(json.loads(form["payload"]), dict)


@pytest.mark.parametrize(("platform", "name"), CASES, ids=CASE_IDS)
def test_body_has_the_platforms_json_layout(platform: str, name: str) -> None:
    """GitHub sends compact JSON, Stripe 2-space indented JSON, Slack compact JSON."""
    body, headers, _ = _load(platform, name)
    if platform == "github":
        data = _json_payload(body, headers)
        text = _form(body)["payload"].encode() if _is_form(headers) else body
        assert text == _compact(data)
    elif platform == "stripe":
        assert body.startswith(b'{\n  "id": "')
    elif not _is_form(headers):
        assert b"\n" not in body and b'": ' not in body


@pytest.mark.parametrize(("platform", "name"), CASES, ids=CASE_IDS)
def test_expect_names_what_the_delivery_holds(platform: str, name: str) -> None:
    body, headers, expect = _load(platform, name)
    assert set(expect) - {"response"} == EXPECT_KEYS
    assert expect["status"] == 200
    names = _names(platform, body, headers)
    assert {key: expect[key] for key in names} == names
    assert name == expect["event"] or name.startswith(expect["event"] + ".")


@pytest.mark.parametrize(("platform", "name"), CASES, ids=CASE_IDS)
def test_job_id_is_the_escaped_delivery_id_unless_a_handshake(platform: str, name: str) -> None:
    body, _, expect = _load(platform, name)
    if (platform, expect["event"]) in HANDSHAKES:
        assert expect["job_id"] is None
    else:
        assert expect["job_id"] == f"{platform}-{_escape(expect['delivery_id'])}"
    if expect["event"] == "url_verification":
        assert expect["response"] == {"challenge": json.loads(body)["challenge"]}
    else:
        assert "response" not in expect


def test_escape_follows_the_documented_examples() -> None:
    assert _escape("13345224609.738474920.8088930838d88f008e0") == (
        "13345224609_2e738474920_2e8088930838d88f008e0"
    )
    assert _escape("evt_1Nabc") == "evt_5f1Nabc"
    assert _escape("72d3162e-cc78-11e3-81ab-4c9367dc0958") == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def test_job_ids_are_unique_except_for_retries() -> None:
    """Two fixtures share a job id only when they are the same delivery (a retry)."""
    seen: dict[str, tuple[str, str]] = {}
    for platform, name in CASES:
        _, headers, expect = _load(platform, name)
        job_id = expect["job_id"]
        if job_id is None:
            continue
        if job_id in seen:
            assert _header(headers, "X-Slack-Retry-Num"), (name, seen[job_id])
        else:
            seen[job_id] = (platform, name)


def test_retry_repeats_its_first_delivery() -> None:
    body, headers, expect = _load("slack", "app_mention.retry")
    first_body, first_headers, first_expect = _load("slack", "app_mention")
    assert body == first_body and expect == first_expect
    assert _header(headers, "X-Slack-Retry-Num") == "1"
    assert _header(headers, "X-Slack-Retry-Reason") == "http_timeout"
    assert _header(first_headers, "X-Slack-Retry-Num") is None


def test_github_deliveries_have_distinct_guids() -> None:
    guids = [_header(_load(p, n)[1], "X-GitHub-Delivery") for p, n in CASES if p == "github"]
    assert len(set(guids)) == len(guids)
    for guid in guids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", guid or "")


def test_stripe_snapshot_ids_look_real() -> None:
    for platform, name in CASES:
        _, _, expect = _load(platform, name)
        if platform == "stripe" and expect["kind"] == "snapshot":
            assert re.fullmatch(r"evt_[A-Za-z0-9]{24}", expect["delivery_id"])


@pytest.mark.parametrize(
    "path", sorted(p for p in FIXTURES.rglob("*") if p.is_file()), ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_no_fixture_file_holds_a_token(path: Path) -> None:
    raw = path.read_bytes()
    assert not TOKEN.search(raw)
    assert not TOKEN.search(unquote_plus(raw.decode("utf-8")).encode())


def _upstream(platform: str, name: str) -> Path:
    path = UPSTREAM / platform / f"{name}.json"
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream examples not found at {UPSTREAM} (set PLATFORM_PAYLOADS_DIR)")
    return path


GITHUB_CASES = [name for platform, name in CASES if platform == "github"]
STRIPE_CASES = [name for platform, name in CASES if platform == "stripe" and name not in STRIPE_WRITTEN]


@pytest.mark.parametrize("name", GITHUB_CASES)
def test_github_body_is_its_upstream_example_compacted(name: str) -> None:
    body, headers, _ = _load("github", name)
    upstream = json.loads(_upstream("github", GITHUB_SOURCE.get(name, name)).read_bytes())
    data = _json_payload(body, headers)
    if name == "issue_comment.created.pull-request":
        assert set(data["issue"].pop("pull_request")) == {
            "url",
            "html_url",
            "diff_url",
            "patch_url",
            "merged_at",
        }
    assert _compact(data) == _compact(upstream)


@pytest.mark.parametrize("name", STRIPE_CASES)
def test_stripe_body_is_its_upstream_example_with_its_own_id(name: str) -> None:
    """Only the top-level id (and, for Connect, an added ``account``) differ from upstream."""
    body = (FIXTURES / "stripe" / f"{name}.body").read_text()
    upstream = _upstream("stripe", STRIPE_SOURCE.get(name, name)).read_text().rstrip("\n")
    fixture_id, upstream_id = json.loads(body)["id"], json.loads(upstream)["id"]
    text = body.replace(f'"id": "{fixture_id}"', f'"id": "{upstream_id}"', 1)
    if name.endswith(".connect"):
        assert re.fullmatch(r"acct_[A-Za-z0-9]{16}", json.loads(body)["account"])
        text = re.sub(r'\n  "account": "acct_[A-Za-z0-9]+",', "", text, count=1)
    assert text == upstream


@pytest.mark.parametrize("name", sorted(STRIPE_WRITTEN))
def test_stripe_fixtures_written_here_have_the_pinned_versions_shapes(name: str) -> None:
    """2025-03-31.basil moved subscription periods onto the items and an invoice's subscription
    under ``parent.subscription_details``; these deliveries must look like that."""
    body, _, _ = _load("stripe", name)
    event = json.loads(body)
    assert event["api_version"] == PINNED_STRIPE_VERSION
    obj = event["data"]["object"]
    if obj["object"] == "subscription":
        assert "current_period_end" not in obj
        assert all("current_period_end" in item for item in obj["items"]["data"])
    if obj["object"] == "invoice":
        assert not {"subscription", "subscription_details", "charge", "payment_intent"} & set(obj)
        assert obj["parent"]["subscription_details"]["subscription"].startswith("sub_")


def test_slack_events_carry_no_deprecated_authed_users() -> None:
    """Slack replaced ``authed_users`` with ``authorizations`` (and stopped sending it)."""
    for platform, name in CASES:
        if platform == "slack":
            body, _, _ = _load(platform, name)
            assert b"authed_users" not in body and b"authed_teams" not in body
