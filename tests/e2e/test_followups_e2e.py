"""Talking to a running agent end to end: signed deliveries → app → Redis → worker → SDK → fakes.

Slack: a thread reply reaches the running run, the Stop button and the stop word stop it and the
placeholder says who did, ``run.ask`` asks in the thread, our own messages are ignored. GitHub: a
comment reaches the running run, ``/stop`` stops it only for people who can write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
import redis

from handlers.state import runs
from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingGitHubFake, HoldingSlackFake
from tests.e2e.support import Ingress, recording, with_json
from tests.handlers.support import FAST, WorkerProcess, followup_state, wait_until

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
SLACK_JOB = "slack-Ev0001AM0001"
REPO = "Codertocat/Hello-World"
ISSUE_JOB = str(recording("github", "issues.opened").expect["job_id"])  # type: ignore[index]
SCRIPTED = "tests.agents:scripted"


def _status(connection: redis.Redis, job_id: str) -> str:
    record = runs.get_run(connection, job_id)
    return str(record["status"]) if record else ""


def _slack_worker(
    redis_url: str, slack: HoldingSlackFake, policy: str = "steer", *, stream: str = "off"
) -> WorkerProcess:
    # The placeholder (SLACK_STREAM=off) carries the Stop button these tests press and edit.
    env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "GATEWAY_FOLLOWUPS": policy,
        "SLACK_STREAM": stream,
    }
    return WorkerProcess(redis_url, *FAST, agent=SCRIPTED, env=env)


def _mention(gateway: Ingress, script: dict[str, Any]) -> None:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=script)) == 200


def _reply_in_thread(gateway: Ingress, n: int, text: str, **inner: Any) -> str:
    """Another mention in the same thread, as Slack delivers it; returns its job id."""
    rec = recording("slack", "app_mention")
    ts = f"1795345300.{n:06d}"
    event = {"text": text, "ts": ts, "event_ts": ts, "thread_ts": THREAD, **inner}
    body = with_json(rec.body, event_id=f"Ev0001FU{n:04d}", event=event)
    assert gateway.post_recording(rec, body=body) == 200
    return f"slack-Ev0001FU{n:04d}"


def _placeholder(slack: HoldingSlackFake) -> dict[str, Any]:
    def posted() -> dict[str, Any] | None:
        found = [m for m in slack.thread(CHANNEL, THREAD) if m.get("bot_id") and m.get("blocks")]
        return found[0] if found else None

    found: dict[str, Any] = wait_until(posted)
    return found


def _bot_messages(slack: HoldingSlackFake) -> list[dict[str, Any]]:
    return [m for m in slack.thread(CHANNEL, THREAD) if m.get("bot_id")]


def _press_stop(gateway: Ingress, slack: HoldingSlackFake, ts: str) -> None:
    payload = slack.press(CHANNEL, ts, "gateway_stop", user="U0001")
    body = ("payload=" + quote_plus(json.dumps(payload, separators=(",", ":")))).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Slackbot 1.0"}
    assert gateway.post("slack", body, headers) == 200


def test_slack_a_reply_in_the_thread_reaches_the_running_run(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"read": 1})
    with _slack_worker(redis_url, slack):
        placeholder = _placeholder(slack)
        assert placeholder["blocks"][1]["elements"][0]["value"] == SLACK_JOB, "the Stop button names the run"
        followup = _reply_in_thread(gateway, 1, "<@U0002> only the billing service")
        wait_until(
            lambda: _status(redis_client, SLACK_JOB) == "succeeded" and _status(redis_client, followup)
        )
        wait_until(lambda: _status(redis_client, followup) == "succeeded")
    (answer,) = _bot_messages(slack)
    assert answer["ts"] == placeholder["ts"] and "read: only the billing service" in answer["text"]
    shown = [block["type"] for block in answer.get("blocks", [])]
    assert shown == ["section", "context_actions"], "the answer and its feedback buttons replaced Stop"
    assert followup_state(redis_client, followup) == "read"
    assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_slack_the_stop_button_stops_the_run_and_says_who(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"sleep": 60})
    with _slack_worker(redis_url, slack):
        placeholder = _placeholder(slack)
        _press_stop(gateway, slack, placeholder["ts"])
        wait_until(lambda: _status(redis_client, SLACK_JOB) == "cancelled", timeout=10)
        wait_until(lambda: "Stopped by" in (slack.message(CHANNEL, placeholder["ts"]) or {}).get("text", ""))
    stopped = slack.message(CHANNEL, placeholder["ts"])
    assert stopped is not None and stopped["text"].startswith(":octagonal_sign: Stopped by <@U0001>")
    assert "blocks" not in stopped
    assert len(_bot_messages(slack)) == 1


def test_slack_the_stop_word_stops_the_run(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"sleep": 60})
    with _slack_worker(redis_url, slack):
        placeholder = _placeholder(slack)
        stop = _reply_in_thread(gateway, 2, "<@U0002> stop")
        wait_until(lambda: _status(redis_client, SLACK_JOB) == "cancelled", timeout=10)
        wait_until(lambda: "Stopped by" in (slack.message(CHANNEL, placeholder["ts"]) or {}).get("text", ""))
        wait_until(lambda: _status(redis_client, stop) == "succeeded")
    assert len(_bot_messages(slack)) == 1, "the stop word got no run and no answer of its own"


def test_slack_the_stop_word_stops_a_streamed_run(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """A streaming message has no Stop button: the stop word stops the run, and the stream is
    stopped and turned into the note, in the same message."""
    _mention(gateway, {"stream": ["Looking at ", "the deploy log"], "stream_every": 0.2, "sleep": 60})
    with _slack_worker(redis_url, slack, stream="on"):
        streamed = wait_until(lambda: [m for m in _bot_messages(slack) if "deploy log" in m.get("text", "")])[
            0
        ]
        stop = _reply_in_thread(gateway, 2, "<@U0002> stop")
        wait_until(lambda: _status(redis_client, SLACK_JOB) == "cancelled", timeout=10)
        wait_until(lambda: "Stopped by" in (slack.message(CHANNEL, streamed["ts"]) or {}).get("text", ""))
        wait_until(lambda: _status(redis_client, stop) == "succeeded")
    assert slack.stream(CHANNEL, streamed["ts"])["state"] == "stopped"
    assert len(_bot_messages(slack)) == 1, "one message: the stream, now the note"


@pytest.mark.parametrize("policy", ["steer", "reject", "interrupt"])
def test_slack_ask_posts_the_question_in_the_thread_and_gets_the_answer(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress, policy: str
) -> None:
    """Whatever the policy, the answer to a question goes to the run that asked it."""
    _mention(gateway, {"ask": "Which service do you mean?", "read_timeout": 30})
    with _slack_worker(redis_url, slack, policy):
        placeholder = _placeholder(slack)
        question = wait_until(
            lambda: [m for m in _bot_messages(slack) if m.get("text") == "Which service do you mean?"]
        )[0]
        assert question["metadata"]["event_type"] == "gateway_said"
        _reply_in_thread(gateway, 3, "<@U0002> billing")
        wait_until(lambda: _status(redis_client, SLACK_JOB) == "succeeded")
    answer = slack.message(CHANNEL, placeholder["ts"])
    assert answer is not None and "read: billing" in answer["text"]
    assert len(_bot_messages(slack)) == 2  # the question and the answer


def test_slack_our_own_message_in_the_thread_is_ignored(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"read": 1, "read_timeout": 3})
    with _slack_worker(redis_url, slack):
        _placeholder(slack)
        own = _reply_in_thread(gateway, 4, "Working on it", user="U0002", bot_id="B0001", app_id="A0001")
        wait_until(lambda: _status(redis_client, SLACK_JOB) == "succeeded", timeout=20)
        wait_until(lambda: _status(redis_client, own) == "succeeded")
    (answer,) = _bot_messages(slack)
    assert "read:" not in answer["text"]
    assert followup_state(redis_client, own) == ""


@pytest.fixture
def github_api() -> Iterator[HoldingGitHubFake]:
    with HoldingGitHubFake() as fake:
        fake.seed_issue(REPO, 1, title="Spelling error in the README file")
        yield fake


def _github_worker(redis_url: str, fake: HoldingGitHubFake) -> WorkerProcess:
    env = {"GITHUB_TOKEN": fake.token, "GITHUB_API_URL": fake.base_url}
    return WorkerProcess(redis_url, *FAST, agent=SCRIPTED, env=env)


def _open_issue(gateway: Ingress, script: dict[str, Any]) -> None:
    rec = recording("github", "issues.opened")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=script)) == 200


def _comment(gateway: Ingress, n: int, body: str, login: str = "Codertocat") -> str:
    rec = recording("github", "issue_comment.created")
    data = json.loads(rec.body)
    data["comment"]["body"] = body
    data["sender"]["login"] = data["comment"]["user"]["login"] = login
    delivery = f"3a124c64-7e02-4f05-b7c1-0000000000{n:02d}"
    headers = {**rec.headers, "X-GitHub-Delivery": delivery}
    assert gateway.post("github", json.dumps(data, separators=(",", ":")).encode(), headers) == 200
    return f"github-{delivery}"


def test_github_a_comment_reaches_the_running_run(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    _open_issue(gateway, {"sleep": 1, "read": 1})
    with _github_worker(redis_url, github_api):
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "running")
        followup = _comment(gateway, 1, "Only the README, please.")
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "succeeded")
        wait_until(lambda: _status(redis_client, followup) == "succeeded")
    (comment,) = github_api.comments(REPO, 1)
    assert "read: Only the README, please." in comment["body"]
    assert followup_state(redis_client, followup) == "read"


def test_github_slash_stop_by_a_writer_stops_the_run(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    github_api.seed_collaborator(REPO, "Codertocat", "maintain")
    _open_issue(gateway, {"sleep": 60})
    with _github_worker(redis_url, github_api):
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "running")
        stop = _comment(gateway, 2, "/stop")
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "cancelled", timeout=10)
        wait_until(lambda: _status(redis_client, stop) == "succeeded")
    assert github_api.calls("GET", "/repos/*/collaborators/Codertocat/permission")
    assert github_api.comments(REPO, 1) == []
    assert "stopped run" in runs.get_run(redis_client, stop)["note"]  # type: ignore[index]


def test_github_slash_stop_by_a_reader_is_refused(
    redis_url: str, redis_client: redis.Redis, github_api: HoldingGitHubFake, gateway: Ingress
) -> None:
    github_api.seed_collaborator(REPO, "passerby", "triage")
    _open_issue(gateway, {"sleep": 3})
    with _github_worker(redis_url, github_api):
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "running")
        stop = _comment(gateway, 3, "/stop", login="passerby")
        wait_until(lambda: _status(redis_client, stop) == "succeeded", timeout=10)
        wait_until(lambda: _status(redis_client, ISSUE_JOB) == "succeeded", timeout=20)
    bodies = [comment["body"] for comment in github_api.comments(REPO, 1)]
    assert any(body.startswith("Only people who can write to this repository") for body in bodies)
    assert any(body.startswith("done ") for body in bodies), "the run went on and answered"
