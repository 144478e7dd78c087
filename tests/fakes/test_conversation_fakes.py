"""What the fakes do for conversations with a running agent: Block Kit, button presses, permissions."""

from __future__ import annotations

from collections.abc import Iterator

import github
import pytest
import slack_sdk
from slack_sdk.errors import SlackApiError

from tests.fakes import GitHubFake, SlackFake

BUTTON = {
    "type": "button",
    "action_id": "stop",
    "text": {"type": "plain_text", "text": "Stop"},
    "value": "job-1",
    "style": "danger",
}
BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Working on it"}},
    {"type": "actions", "block_id": "run", "elements": [BUTTON]},
]


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def client(slack: SlackFake) -> slack_sdk.WebClient:
    return slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)


def test_a_text_only_update_drops_the_blocks_as_slack_does(
    slack: SlackFake, client: slack_sdk.WebClient
) -> None:
    posted = client.chat_postMessage(channel="C1", text="Working on it", blocks=BLOCKS)
    assert slack.message("C1", posted["ts"])["blocks"] == BLOCKS  # type: ignore[index]
    client.chat_update(channel="C1", ts=posted["ts"], text="Still working", blocks=BLOCKS)
    assert slack.message("C1", posted["ts"])["blocks"] == BLOCKS  # type: ignore[index]
    client.chat_update(channel="C1", ts=posted["ts"], text="The answer")
    message = slack.message("C1", posted["ts"])
    assert message is not None and "blocks" not in message and message["text"] == "The answer"


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{"type": "actions", "elements": [{**BUTTON, "text": {"type": "mrkdwn", "text": "Stop"}}]}],
        [{"type": "actions", "elements": [{**BUTTON, "value": "v" * 2001}]}],
        [{"type": "actions", "elements": [{**BUTTON, "style": "red"}]}],
        [{"type": "actions", "elements": []}],
        [{"type": "section", "block_id": "a", "text": {"type": "mrkdwn", "text": "x"}}] * 2,
        [{"type": "carousel"}],
    ],
)
def test_blocks_slack_refuses_are_refused(client: slack_sdk.WebClient, blocks: list[object]) -> None:
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel="C1", text="x", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks"


def test_pressing_a_button_gives_the_block_actions_payload(
    slack: SlackFake, client: slack_sdk.WebClient
) -> None:
    parent = slack.seed_message("C1", "question", user="U1")
    posted = client.chat_postMessage(channel="C1", thread_ts=parent, text="Working", blocks=BLOCKS)
    payload = slack.press("C1", posted["ts"], "stop", user="U2")
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U2"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C1",
        "is_ephemeral": False,
        "thread_ts": parent,
    }
    (action,) = payload["actions"]
    assert action["action_id"] == "stop" and action["value"] == "job-1" and action["block_id"] == "run"
    assert payload["trigger_id"] and payload["response_url"].startswith(slack.origin)
    with pytest.raises(LookupError):
        slack.press("C1", posted["ts"], "approve")


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


@pytest.mark.parametrize(
    ("role", "private", "permission"),
    [
        ("admin", False, "admin"),
        ("maintain", False, "write"),
        ("write", False, "write"),
        ("triage", False, "read"),
        (None, False, "read"),
        (None, True, "none"),
    ],
)
def test_collaborator_permission_uses_githubs_legacy_names(
    gh: GitHubFake, role: str | None, private: bool, permission: str
) -> None:
    gh.seed_repo("o/r", private=private)
    if role:
        gh.seed_collaborator("o/r", "alice", role)
    client = github.Github(auth=github.Auth.Token(gh.token), base_url=gh.base_url, lazy=True)
    repo = client.get_repo("o/r")
    assert repo.get_collaborator_permission("alice") == permission
    assert repo.get_collaborator_role_name("alice") == (role or permission)
