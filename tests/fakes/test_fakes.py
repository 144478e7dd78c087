"""The fake platform APIs, driven by the real SDK clients pointed at them by base URL."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import github
import httpx
import pytest
import requests
import slack_sdk
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, GithubIntegration, GithubRetry
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from stripe.params import PaymentIntentUpdateParams

from tests.fakes import GitHubFake, SlackFake, StripeFake

APP_ID = 4242
INSTALLATION_ID = 77


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


@pytest.fixture
def stripe_fake() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    encoding, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, fmt, serialization.NoEncryption()).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _github(base_url: str, auth: Auth.Auth | None, *, retry: Any = None) -> github.Github:
    # PyGithub waits 0.25 s between requests and 1 s between writes by default; tests need neither.
    return github.Github(
        auth=auth, base_url=base_url, retry=retry, seconds_between_requests=None, seconds_between_writes=None
    )


def _stripe(fake: StripeFake, *, retries: int = 0, key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        key or fake.api_key, base_addresses={"api": fake.base_url}, max_network_retries=retries
    )


# -- common machinery ----------------------------------------------------------------------------


def test_fake_listens_on_a_free_loopback_port_and_releases_it_on_stop() -> None:
    first, second = SlackFake().start(), SlackFake().start()
    port = first.port
    assert first.base_url == f"http://127.0.0.1:{port}/api/" and second.port != port
    first.stop()
    second.stop()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))


def test_calls_are_filtered_by_method_and_glob_and_reset_clears_them(slack: SlackFake) -> None:
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)
    client.auth_test()
    client.chat_postMessage(channel="C1", text="hi")
    assert [c.path for c in slack.calls("POST", "/chat.*")] == ["/chat.postMessage"]
    assert slack.calls(path="/auth.test")[0].headers["authorization"] == f"Bearer {slack.token}"
    slack.reset()
    assert slack.calls() == [] and slack.messages("C1") == []


def test_fail_next_answers_the_given_number_of_matching_calls_and_flags_them(gh: GitHubFake) -> None:
    gh.seed_repo("acme/widgets")
    gh.fail_next("GET", "/repos/*", 502, times=2)
    headers = {"Authorization": f"token {gh.token}"}
    statuses = [httpx.get(f"{gh.base_url}/repos/acme/widgets", headers=headers).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert [c.faulted for c in gh.calls()] == [True, True, False]


def test_wait_for_times_out_naming_what_arrived(slack: SlackFake) -> None:
    slack_sdk.WebClient(token=slack.token, base_url=slack.base_url).auth_test()
    assert len(slack.wait_for("POST", "/auth.test", timeout=1)) == 1
    with pytest.raises(TimeoutError, match="/auth.test"):
        slack.wait_for("POST", "/chat.postMessage", timeout=0.1)


# -- Slack ---------------------------------------------------------------------------------------


def test_slack_update_changes_the_stored_text_of_a_posted_message(slack: SlackFake) -> None:
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)
    posted = client.chat_postMessage(channel="C1", text="Working on it…")
    client.chat_update(channel="C1", ts=posted["ts"], text="Done: 3 issues found")
    stored = slack.message("C1", posted["ts"])
    assert stored is not None and stored["text"] == "Done: 3 issues found" and "edited" in stored
    assert posted["message"]["bot_id"] == client.auth_test()["bot_id"]


def test_slack_ts_values_increase_and_never_repeat(slack: SlackFake) -> None:
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)
    stamps = [client.chat_postMessage(channel="C1", text=str(i))["ts"] for i in range(5)]
    assert len(set(stamps)) == 5 and stamps == sorted(stamps, key=float)


def test_slack_thread_replies_return_seeded_and_posted_messages(slack: SlackFake) -> None:
    parent = slack.seed_message("C1", "can you look at this?", user="U1")
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)
    client.chat_postMessage(channel="C1", text="on it", thread_ts=parent)
    replies = client.conversations_replies(channel="C1", ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["can you look at this?", "on it"]
    assert client.users_info(user="U1")["user"]["id"] == "U1"


def test_slack_ephemeral_and_delete(slack: SlackFake) -> None:
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url)
    assert client.chat_postEphemeral(channel="C1", user="U1", text="only you")["ok"]
    ts = client.chat_postMessage(channel="C1", text="oops")["ts"]
    client.chat_delete(channel="C1", ts=ts)
    assert slack.ephemerals[0]["text"] == "only you" and slack.message("C1", ts) is None
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C1", ts=ts, text="again")
    assert raised.value.response["error"] == "message_not_found"


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("xoxb-wrong", "invalid_auth")])
def test_slack_refuses_missing_or_wrong_tokens_with_200_and_ok_false(
    slack: SlackFake, token: str | None, error: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        slack_sdk.WebClient(token=token, base_url=slack.base_url).chat_postMessage(channel="C1", text="x")
    assert raised.value.response.status_code == 200 and raised.value.response["error"] == error
    assert slack.messages("C1") == []


def test_slack_rate_limit_handler_retries_a_429_after_retry_after(slack: SlackFake) -> None:
    # RateLimitErrorRetryHandler sleeps Retry-After + random() seconds: 0 keeps the test under a second.
    slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "0"})
    handler = RateLimitErrorRetryHandler(max_retry_count=1)
    client = slack_sdk.WebClient(token=slack.token, base_url=slack.base_url, retry_handlers=[handler])
    posted = client.chat_postMessage(channel="C1", text="hello")
    assert [(c.status, c.faulted) for c in slack.calls()] == [(429, True), (200, False)]
    assert [m["ts"] for m in slack.messages("C1")] == [posted["ts"]]


def test_slack_default_client_does_not_retry_a_429(slack: SlackFake) -> None:
    slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "30"})
    with pytest.raises(SlackApiError) as raised:
        slack_sdk.WebClient(token=slack.token, base_url=slack.base_url).chat_postMessage(
            channel="C1", text="x"
        )
    assert raised.value.response.status_code == 429 and raised.value.response.headers["Retry-After"] == "30"
    assert len(slack.calls()) == 1


def test_slack_response_url_records_what_was_posted(slack: SlackFake) -> None:
    url = slack.response_url()
    response = WebhookClient(url).send(text="Queued", response_type="ephemeral")
    assert response.status_code == 200
    assert slack.responses(url) == [{"text": "Queued", "response_type": "ephemeral"}]


# -- GitHub --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/api/v3"])
def test_github_issue_comment_lands_in_the_store(prefix: str) -> None:
    with GitHubFake(prefix=prefix) as gh:
        gh.seed_issue("acme/widgets", 3, title="Crash on start")
        issue = _github(gh.base_url, Auth.Token(gh.token)).get_repo("acme/widgets").get_issue(3)
        comment = issue.create_comment("Looking into it")
        comment.edit("Fixed in #7")
        assert [c["body"] for c in gh.comments("acme/widgets", 3)] == ["Fixed in #7"]
        assert all(c.target.startswith(f"{prefix}/repos/acme/widgets") for c in gh.calls())
        assert [c.path for c in gh.calls("POST")] == ["/repos/acme/widgets/issues/3/comments"]


def test_github_pull_files_are_paginated_with_link_headers(gh: GitHubFake) -> None:
    files = [{"filename": f"src/m{i}.py", "additions": i, "deletions": 1} for i in range(5)]
    gh.seed_pull("acme/widgets", 7, title="Refactor", files=files)
    client = github.Github(
        auth=Auth.Token(gh.token), base_url=gh.base_url, retry=None, per_page=2, seconds_between_requests=None
    )
    pull = client.get_repo("acme/widgets").get_pull(7)
    assert (pull.additions, pull.deletions, pull.changed_files) == (10, 5, 5)
    assert [f.filename for f in pull.get_files()] == [f["filename"] for f in files]
    pages = gh.calls("GET", "/repos/acme/widgets/pulls/7/files")
    assert [c.query.get("page") for c in pages] == [None, "2", "3"]  # followed rel="next" to the end


def test_github_app_gets_an_installation_token_and_uses_it(app_key: rsa.RSAPrivateKey) -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=_public_pem(app_key)) as gh:
        gh.seed_pull("acme/widgets", 7, head_sha="a" * 40)
        integration = GithubIntegration(
            auth=Auth.AppAuth(APP_ID, _pem(app_key)),
            base_url=gh.base_url,
            retry=None,
            seconds_between_writes=None,
        )
        token = integration.get_access_token(INSTALLATION_ID)
        assert timedelta(minutes=59) < token.expires_at - datetime.now(UTC) <= timedelta(hours=1)
        assert integration.get_app().id == APP_ID
        auth = Auth.AppAuth(APP_ID, _pem(app_key)).get_installation_auth(INSTALLATION_ID)
        repo = _github(gh.base_url, auth).get_repo("acme/widgets")
        run = repo.create_check_run(name="agent", head_sha="a" * 40, status="in_progress")
        run.edit(conclusion="success", output={"title": "Review", "summary": "Looks good"})
        assert repo.get_issue(7).create_comment("Reviewed").user.login == "fake-app[bot]"
        assert (
            gh.check_runs()[0]["status"] == "completed"
            and gh.check_runs()[0]["output"]["summary"] == "Looks good"
        )
        assert {t["installation_id"] for t in gh.issued_tokens} == {INSTALLATION_ID}


def test_github_refuses_a_jwt_signed_by_another_key(app_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with GitHubFake(app_id=APP_ID, app_public_key=_public_pem(app_key)) as gh:
        integration = GithubIntegration(
            auth=Auth.AppAuth(APP_ID, _pem(other)), base_url=gh.base_url, retry=None
        )
        with pytest.raises(github.GithubException) as raised:
            integration.get_access_token(INSTALLATION_ID)
        assert raised.value.status == 401 and gh.issued_tokens == []


@pytest.mark.parametrize("auth", [None, Auth.Token("ghp_wrong")])
def test_github_refuses_missing_or_unknown_tokens(gh: GitHubFake, auth: Auth.Auth | None) -> None:
    gh.seed_repo("acme/widgets")
    with pytest.raises(github.GithubException) as raised:
        _github(gh.base_url, auth).get_repo("acme/widgets")
    assert raised.value.status == 401 and "message" in raised.value.data


def test_github_check_runs_need_an_installation_token(gh: GitHubFake) -> None:
    gh.seed_repo("acme/widgets")
    repo = _github(gh.base_url, Auth.Token(gh.token)).get_repo("acme/widgets")
    with pytest.raises(github.GithubException) as raised:
        repo.create_check_run(name="agent", head_sha="b" * 40)
    assert raised.value.status == 403


def test_github_500_is_raised_when_retries_are_off(gh: GitHubFake) -> None:
    gh.seed_issue("acme/widgets", 3)
    issue = _github(gh.base_url, Auth.Token(gh.token)).get_repo("acme/widgets").get_issue(3)
    gh.fail_next("POST", "/repos/acme/widgets/issues/3/comments", 500)
    with pytest.raises(github.GithubException) as raised:
        issue.create_comment("hello")
    assert raised.value.status == 500 and len(gh.calls("POST")) == 1 and gh.comments("acme/widgets", 3) == []


def test_github_retry_retries_5xx_on_get_and_post_but_not_patch(gh: GitHubFake) -> None:
    gh.seed_issue("acme/widgets", 3)
    client = _github(gh.base_url, Auth.Token(gh.token), retry=GithubRetry(total=2, backoff_factor=0))
    gh.fail_next("GET", "/repos/acme/widgets", 500)
    issue = client.get_repo("acme/widgets").get_issue(3)
    gh.fail_next("POST", "*/comments", 502)
    comment = issue.create_comment("hello")
    gh.fail_next("PATCH", "*", 502)
    with pytest.raises(github.GithubException):
        comment.edit("edited")
    assert [(c.method, c.status) for c in gh.calls() if c.faulted] == [
        ("GET", 500),
        ("POST", 502),
        ("PATCH", 502),
    ]
    assert [c["body"] for c in gh.comments("acme/widgets", 3)] == ["hello"]


def test_github_exhausted_retries_raise_requests_retry_error(gh: GitHubFake) -> None:
    gh.seed_repo("acme/widgets")
    gh.fail_next("GET", "/repos/acme/widgets", 503, times=2)
    with pytest.raises(requests.exceptions.RetryError):
        _github(gh.base_url, Auth.Token(gh.token), retry=GithubRetry(total=1)).get_repo("acme/widgets")


# -- Stripe --------------------------------------------------------------------------------------


def test_stripe_metadata_update_applies_once_for_a_repeated_idempotency_key(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("payment_intent", "pi_1", metadata={"order": "42", "stale": "x"})
    client = _stripe(stripe_fake)
    update: PaymentIntentUpdateParams = {"metadata": {"agent_run": "run_1", "stale": ""}}
    first = client.v1.payment_intents.update("pi_1", update, {"idempotency_key": "evt_1-annotate"})
    second = client.v1.payment_intents.update("pi_1", update, {"idempotency_key": "evt_1-annotate"})
    assert first.to_dict() == second.to_dict()
    stored = stripe_fake.get("payment_intent", "pi_1")
    assert stored is not None and stored["metadata"] == {"order": "42", "agent_run": "run_1"}
    calls = stripe_fake.calls("POST", "/v1/payment_intents/pi_1")
    assert [c.replayed for c in calls] == [False, True]
    assert calls[0].body == {"metadata[agent_run]": "run_1", "metadata[stale]": ""}


def test_stripe_refuses_an_idempotency_key_reused_with_other_params(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("charge", "ch_1")
    client = _stripe(stripe_fake)
    client.v1.charges.update("ch_1", {"metadata": {"a": "1"}}, {"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.charges.update("ch_1", {"metadata": {"a": "2"}}, {"idempotency_key": "k"})
    stored = stripe_fake.get("charge", "ch_1")
    assert stored is not None and stored["metadata"] == {"a": "1"}


def test_stripe_account_header_scopes_objects(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("dispute", "dp_1", account="acct_connected", reason="fraudulent")
    client = _stripe(stripe_fake)
    assert (
        client.v1.disputes.retrieve("dp_1", options={"stripe_account": "acct_connected"}).reason
        == "fraudulent"
    )
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.disputes.retrieve("dp_1")
    assert raised.value.http_status == 404 and raised.value.code == "resource_missing"
    assert stripe_fake.calls()[0].headers["stripe-account"] == "acct_connected"


def test_stripe_lists_filter_by_customer_newest_first_and_paginate(stripe_fake: StripeFake) -> None:
    for i in range(3):
        stripe_fake.seed("invoice", f"in_{i}", customer="cus_1")
    stripe_fake.seed("invoice", "in_other", customer="cus_2")
    page = _stripe(stripe_fake).v1.invoices.list({"customer": "cus_1", "limit": 2})
    assert [i.id for i in page.data] == ["in_2", "in_1"] and page.has_more
    assert [i.id for i in page.auto_paging_iter()] == ["in_2", "in_1", "in_0"]


def test_stripe_snapshot_and_thin_events_are_retrieved(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("event", "evt_1", type="charge.dispute.created", data={"object": {"id": "dp_1"}})
    related = {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"}
    stripe_fake.seed_thin_event("v1.billing.meter.error_report_triggered", "evt_thin", related_object=related)
    client = _stripe(stripe_fake)
    assert client.v1.events.retrieve("evt_1").data.object.id == "dp_1"
    thin = client.v2.core.events.retrieve("evt_thin")
    assert thin.type == "v1.billing.meter.error_report_triggered" and thin.id == "evt_thin"


@pytest.mark.parametrize(
    ("status", "headers"), [(500, None), (409, None), (429, {"Stripe-Should-Retry": "true"})]
)
def test_stripe_retries_server_errors_conflicts_and_should_retry(
    stripe_fake: StripeFake, status: int, headers: dict[str, str] | None
) -> None:
    # stripe-python sleeps 0.5 s before its first retry whatever Retry-After says.
    stripe_fake.seed("customer", "cus_1")
    stripe_fake.fail_next("GET", "/v1/customers/cus_1", status, headers=headers)
    assert _stripe(stripe_fake, retries=1).v1.customers.retrieve("cus_1").id == "cus_1"
    assert [c.status for c in stripe_fake.calls()] == [status, 200]


@pytest.mark.parametrize(("status", "headers"), [(429, None), (503, {"Stripe-Should-Retry": "false"})])
def test_stripe_does_not_retry_plain_429_or_should_retry_false(
    stripe_fake: StripeFake, status: int, headers: dict[str, str] | None
) -> None:
    stripe_fake.seed("customer", "cus_1")
    stripe_fake.fail_next("GET", "/v1/customers/cus_1", status, headers=headers)
    with pytest.raises(stripe.StripeError):
        _stripe(stripe_fake, retries=2).v1.customers.retrieve("cus_1")
    assert len(stripe_fake.calls()) == 1


def test_stripe_retried_post_keeps_its_idempotency_key(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("subscription", "sub_1")
    stripe_fake.fail_next("POST", "/v1/subscriptions/sub_1", 500)
    _stripe(stripe_fake, retries=1).v1.subscriptions.update("sub_1", {"metadata": {"seen": "1"}})
    first, second = stripe_fake.calls("POST")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    stored = stripe_fake.get("subscription", "sub_1")
    assert stored is not None and stored["metadata"] == {"seen": "1"}


def test_stripe_refuses_unknown_or_missing_keys(stripe_fake: StripeFake) -> None:
    stripe_fake.seed("customer", "cus_1")
    with pytest.raises(stripe.AuthenticationError):
        _stripe(stripe_fake, key="sk_test_wrong").v1.customers.retrieve("cus_1")
    raw = httpx.get(f"{stripe_fake.base_url}/v1/customers/cus_1")
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "invalid_request_error"


def test_fakes_start_and_stop_quickly() -> None:
    started = time.monotonic()
    with SlackFake(), GitHubFake(), StripeFake():
        pass
    assert time.monotonic() - started < 1
