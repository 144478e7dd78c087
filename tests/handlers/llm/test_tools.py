"""The read-only tools against the fake Slack, GitHub and Stripe APIs, through the real SDK clients."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterable
from typing import Any

import pytest

from handlers.agent import Event
from handlers.agents.llm import tools_for
from handlers.config import WorkerSettings
from handlers.errors import PermanentError
from handlers.services import Services
from handlers.tools import RESULT_LIMIT, Tool, cap
from tests.fakes import GitHubFake, SlackFake, StripeFake
from tests.fakes.server import Reply, Request, Route, route
from tests.handlers.llm.model import slack_event


class _GitHubWithContents(GitHubFake):
    """The fake GitHub plus ``GET /repos/{owner}/{repo}/contents/{path}`` for one-segment paths."""

    files: dict[tuple[str, str], str] = {}

    def routes(self) -> Iterable[Route]:
        return [*super().routes(), route("GET", "/repos/{owner}/{repo}/contents/{path}", self._contents)]

    def _contents(self, request: Request) -> Reply:
        ref = str(request.query.get("ref") or "main")
        text = self.files.get((request.params["path"], ref))
        if text is None:
            return Reply(404, {"message": "Not Found"})
        encoded = base64.b64encode(text.encode()).decode()
        path = request.params["path"]
        return Reply(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "content": encoded,
                "path": path,
                "name": path,
                "sha": "f" * 40,
                "size": len(text),
            },
        )


def _run(tool: Tool, **arguments: Any) -> str:
    async def go() -> str:
        return await tool.run(arguments, time.time() + 30)

    return asyncio.run(go())


def _by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {tool.name: tool for tool in tools}


def _github_event(number: int = 5) -> Event:
    payload = {
        "repository": {"id": 1, "full_name": "octo/app"},
        "pull_request": {"number": number, "head": {"sha": "abc123"}},
        "sender": {"login": "dev", "type": "User"},
    }
    return Event(
        platform="github",
        delivery_id="d1",
        name="pull_request",
        action="opened",
        received_at="2026-11-22T11:00:00+00:00",
        session_key="github:1:5",
        payload=payload,
    )


def test_github_tools_read_the_pull_request_its_diff_and_files_at_the_head() -> None:
    with _GitHubWithContents() as fake:
        fake.seed_pull(
            "octo/app",
            5,
            title="Retry webhooks",
            body="Adds retries.",
            files=[
                {"filename": "app.py", "patch": "@@ -1 +1 @@\n-old\n+new", "additions": 1, "deletions": 1}
            ],
        )
        fake.seed_comment("octo/app", 5, "Please add a test.", user="reviewer")
        fake.files[("app.py", "abc123")] = "print('hello')\n"
        services = Services(
            WorkerSettings.from_environ({"GITHUB_TOKEN": fake.token, "GITHUB_API_URL": fake.base_url})
        )
        tools = _by_name(tools_for(_github_event(), services))
        assert set(tools) == {"github_issue", "github_pull_files", "github_file"}

        issue = json.loads(_run(tools["github_issue"]))
        assert issue["title"] == "Retry webhooks" and issue["is_pull_request"] is True
        assert [(c["author"], c["body"]) for c in issue["comments"]] == [("reviewer", "Please add a test.")]
        files = json.loads(_run(tools["github_pull_files"]))["files"]
        assert files[0]["file"] == "app.py" and "+new" in files[0]["diff"]
        assert _run(tools["github_file"], path="app.py") == "print('hello')\n"
        assert fake.calls("GET", "/repos/octo/app/contents/app.py")[0].query == {"ref": "abc123"}
        assert not fake.calls("POST") and not fake.calls("PATCH")  # tools never write


def test_github_tool_errors_are_translated_not_crashes() -> None:
    with GitHubFake() as fake:
        fake.seed_repo("octo/app")
        services = Services(
            WorkerSettings.from_environ({"GITHUB_TOKEN": fake.token, "GITHUB_API_URL": fake.base_url})
        )
        tools = _by_name(tools_for(_github_event(), services))
        with pytest.raises(PermanentError, match="GitHub 404"):
            _run(tools["github_issue"], number=99)


def test_no_github_tools_without_credentials() -> None:
    assert tools_for(_github_event(), Services(WorkerSettings.from_environ({}))) == []


def test_slack_thread_tool_reads_only_the_event_thread() -> None:
    with SlackFake() as fake:
        thread = fake.seed_message("C1", "deploy is stuck", ts="1700000000.000100")
        fake.seed_message("C1", "which env?", thread_ts=thread, user="U2")
        fake.seed_message("C1", "another thread", ts="1700000500.000100")
        services = Services(
            WorkerSettings.from_environ({"SLACK_BOT_TOKEN": fake.token, "SLACK_API_URL": fake.base_url})
        )
        tools = _by_name(tools_for(slack_event(thread=thread), services))
        text = _run(tools["slack_thread"], limit=10)
        assert text.splitlines()[0].endswith("<@U0FAKEUSER>: deploy is stuck")
        assert "<@U2>: which env?" in text and "another thread" not in text
        assert fake.calls(path="/conversations.replies")[0].body["channel"] == "C1"


def _long_thread(fake: SlackFake, replies: int) -> str:
    thread = fake.seed_message("C1", "start", ts="1700000000.000100")
    for n in range(1, replies + 1):
        fake.seed_message("C1", f"reply {n}", ts=f"{1700000000 + n}.000100", thread_ts=thread, user="U2")
    return thread


def _slack_services(fake: SlackFake, redis_url: str, **extra: str) -> Services:
    environ = {"SLACK_BOT_TOKEN": fake.token, "SLACK_API_URL": fake.base_url, "REDIS_URL": redis_url}
    return Services(WorkerSettings.from_environ({**environ, **extra}))


def _sent(call: Any) -> dict[str, Any]:
    return {**call.query, **(call.body if isinstance(call.body, dict) else {})}


def test_slack_thread_tool_reads_the_newest_messages_of_a_long_thread(redis_url: str) -> None:
    with SlackFake() as fake:
        thread = _long_thread(fake, 300)
        tools = _by_name(tools_for(slack_event(thread=thread), _slack_services(fake, redis_url)))
        lines = _run(tools["slack_thread"], limit=20).splitlines()
        assert lines[0].endswith("reply 281") and lines[19].endswith("reply 300")
        assert "(281 older messages left out)" in lines
        calls = fake.calls(path="/conversations.replies")
        assert len(calls) >= 2 and all(int(_sent(c)["limit"]) <= 200 for c in calls)


def test_slack_thread_tool_of_an_unlisted_app_keeps_to_15_a_page_and_says_what_it_missed(
    redis_url: str,
) -> None:
    with SlackFake(distribution="unlisted") as fake:
        thread = _long_thread(fake, 40)
        services = _slack_services(fake, redis_url, SLACK_APP_DISTRIBUTION="unlisted")
        tools = _by_name(tools_for(slack_event(thread=thread), services))
        text = _run(tools["slack_thread"], limit=50)
        (call,) = fake.calls(path="/conversations.replies")
        assert int(_sent(call)["limit"]) <= 15 and call.status == 200
        assert "reply 14" in text and "newer ones are missing" in text


def test_stripe_tools_read_the_event_customer_charges_invoices_and_subscription() -> None:
    with StripeFake() as fake:
        fake.seed("customer", "cus_1", name="Ada", email="ada@example.com")
        fake.seed("charge", customer="cus_1", status="failed", failure_code="card_declined")
        fake.seed("charge", customer="cus_other", status="succeeded")
        fake.seed("invoice", "in_1", customer="cus_1", status="open", attempt_count=2, subscription="sub_1")
        fake.seed("subscription", "sub_1", customer="cus_1", status="past_due")
        event = Event(
            platform="stripe",
            delivery_id="evt_1",
            name="invoice.payment_failed",
            action=None,
            received_at="2026-11-22T11:00:00+00:00",
            session_key="stripe:platform:customer:cus_1",
            payload={
                "data": {
                    "object": {
                        "object": "invoice",
                        "id": "in_1",
                        "customer": "cus_1",
                        "subscription": "sub_1",
                    }
                }
            },
        )
        services = Services(
            WorkerSettings.from_environ({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.base_url})
        )
        tools = _by_name(tools_for(event, services))
        assert json.loads(_run(tools["stripe_customer"]))["name"] == "Ada"
        charges = json.loads(_run(tools["stripe_charges"], limit=5))
        assert [c["failure_code"] for c in charges] == ["card_declined"]  # only this customer's
        assert json.loads(_run(tools["stripe_invoices"]))[0]["attempt_count"] == 2
        assert json.loads(_run(tools["stripe_subscription"]))[0]["status"] == "past_due"
        assert not fake.calls("POST")


def test_stripe_tools_read_the_pinned_versions_fields() -> None:
    """Periods are on subscription items, an invoice's subscription under its parent (since basil)."""
    parent = {"type": "subscription_details", "subscription_details": {"subscription": "sub_2"}}
    items = {"object": "list", "data": [
        {"id": "si_1", "current_period_start": 1_790_000_000, "current_period_end": 1_792_592_000},
        {"id": "si_2", "current_period_start": 1_790_000_500, "current_period_end": 1_793_000_000},
    ]}  # fmt: skip
    with StripeFake() as fake:
        fake.seed("customer", "cus_2")
        fake.seed("invoice", "in_2", customer="cus_2", status="open", parent=parent)
        fake.seed("subscription", "sub_2", customer="cus_2", status="past_due", items=items)
        obj = {"object": "invoice", "id": "in_2", "customer": "cus_2", "parent": parent}
        event = Event(
            platform="stripe",
            delivery_id="evt_2",
            name="invoice.payment_failed",
            action=None,
            received_at="2026-11-22T11:00:00+00:00",
            session_key="stripe:platform:customer:cus_2",
            payload={"data": {"object": obj}},
        )
        services = Services(
            WorkerSettings.from_environ({"STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.base_url})
        )
        tools = _by_name(tools_for(event, services))
        assert json.loads(_run(tools["stripe_invoices"]))[0]["subscription"] == "sub_2"
        (sub,) = json.loads(_run(tools["stripe_subscription"]))
        assert (sub["current_period_start"], sub["current_period_end"]) == (1_790_000_000, 1_793_000_000)
        assert fake.calls(path="/v1/subscriptions/sub_2"), "the event's own subscription was read"


def test_cap_says_how_much_was_cut() -> None:
    assert cap("x" * 10, 4) == "xxxx\n…[cut: 6 more characters]"
    assert cap("short") == "short" and len(cap("y" * (RESULT_LIMIT + 1))) < RESULT_LIMIT + 40
