"""The runs API through the real app and a real Redis: who may call it, the list, records, new runs,
and the deliveries the ingress saw. Run state is written the way workers write it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from starlette.testclient import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.config import Settings
from handlers.state import runs
from tests.e2e.support import API, API_TOKEN, Ingress, ingress, recording, with_json


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url, api=True) as app:
        yield app


def _mention(gateway: Ingress, event_id: str) -> str:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, event_id=event_id)) == 200
    return f"slack-{event_id}"


def _write(connection: redis.Redis, job_id: str, **fields: object) -> None:
    with connection.pipeline() as pipe:
        runs.write(pipe, job_id, **fields)
        pipe.execute()


def test_the_api_is_off_without_a_token(redis_url: str) -> None:
    settings = Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": "s"})
    with TestClient(create_app(settings)) as client:
        for path in ("/api/runs", "/api/runs/slack-Ev1", "/api/deliveries", "/console"):
            response = client.get(path, headers=API)
            assert response.status_code == 404 and "GATEWAY_API_TOKEN" in response.json()["detail"]
        assert client.post("/api/runs", json={"text": "hi"}, headers=API).status_code == 404


def test_callers_need_a_bearer_token_of_the_setting(gateway: Ingress) -> None:
    client = gateway.client
    assert client.get("/api/runs").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/runs", headers={"Authorization": f"Basic {API_TOKEN}"}).status_code == 401
    assert client.get("/api/runs", headers=API).status_code == 200


def test_a_token_in_the_query_string_is_refused_even_beside_a_good_header(gateway: Ingress) -> None:
    for query in (f"token={API_TOKEN}", f"access_token={API_TOKEN}", f"q={API_TOKEN}", "api_key=x"):
        response = gateway.client.get(f"/api/runs?{query}", headers=API)
        assert response.status_code == 401, query
        assert API_TOKEN not in response.text


def test_every_value_of_the_setting_is_accepted_for_rotation(redis_url: str) -> None:
    environ = {
        "REDIS_URL": redis_url,
        "SLACK_SIGNING_SECRET": "s",
        "GATEWAY_API_TOKEN": "old-token, new-token",
    }
    with TestClient(create_app(Settings.from_environ(environ))) as client:
        for token in ("old-token", "new-token"):
            assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_runs_are_listed_newest_first_a_page_at_a_time(gateway: Ingress) -> None:
    ids = [_mention(gateway, f"Ev0PAGE{i:04d}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = "/api/runs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = gateway.client.get(query, headers=API).json()
        seen += [run["run_id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_runs_can_be_filtered_by_status_and_platform(gateway: Ingress) -> None:
    first, second = _mention(gateway, "Ev0FILTER1"), _mention(gateway, "Ev0FILTER2")
    _write(gateway.connection, first, status="failed", platform="slack", error="boom")
    failed = gateway.client.get("/api/runs?status=failed", headers=API).json()["runs"]
    assert [run["run_id"] for run in failed] == [first] and failed[0]["error"] == "boom"
    queued = gateway.client.get("/api/runs?status=queued&platform=slack", headers=API).json()["runs"]
    assert [run["run_id"] for run in queued] == [second]
    assert gateway.client.get("/api/runs?platform=github", headers=API).json()["runs"] == []
    assert gateway.client.get("/api/runs?status=lost", headers=API).status_code == 400
    assert gateway.client.get("/api/runs?limit=0", headers=API).status_code == 400


def test_a_run_record_has_the_documented_fields_and_an_unknown_one_is_404(gateway: Ingress) -> None:
    job_id = _mention(gateway, "Ev0RECORD1")
    queued = gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    assert queued["status"] == "queued" and queued["platform"] == "slack" and queued["created_at"]
    _write(gateway.connection, job_id, status="succeeded", platform="slack", event="app_mention", reply="hi")
    record = gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    fields = {"run_id", "platform", "event", "status", "session", "attempts", "created_at", "started_at"}
    assert fields | {"ended_at", "progress", "reply", "error"} <= set(record)
    assert (record["run_id"], record["status"], record["reply"]) == (job_id, "succeeded", "hi")
    missing = gateway.client.get("/api/runs/slack-Ev0NOPE", headers=API)
    assert missing.status_code == 404 and missing.json()["detail"] == "no run slack-Ev0NOPE"


def test_a_recovered_delivery_shows_as_queued_with_where_it_came_from(gateway: Ingress) -> None:
    """A sweep marks the record before any worker took the job: the API still reads it as queued."""
    job_id = _mention(gateway, "Ev0RECOVER")
    _write(gateway.connection, job_id, outcome="recovered", source="slack:test", recovered_at=runs.utcnow())
    record = gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    assert (record["status"], record["outcome"], record["source"]) == ("queued", "recovered", "slack:test")
    listed = gateway.client.get("/api/runs?status=queued", headers=API).json()["runs"]
    assert [run["run_id"] for run in listed] == [job_id] and listed[0]["recovered_at"]


def test_an_api_run_is_queued_once_per_idempotency_key(gateway: Ingress) -> None:
    headers = {**API, "Idempotency-Key": "order-42"}
    first = gateway.client.post(
        "/api/runs", json={"text": "summarise", "session_id": "web-1"}, headers=headers
    )
    again = gateway.client.post(
        "/api/runs", json={"text": "summarise", "session_id": "web-1"}, headers=headers
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == {"run_id": "api-order-42", "duplicate": False}
    assert again.json() == {"run_id": "api-order-42", "duplicate": True}
    envelope = gateway.envelope("api-order-42")
    assert envelope["platform"] == "api" and envelope["payload"] == {
        "text": "summarise",
        "session_id": "web-1",
    }
    assert gateway.connection.llen("rq:queue:gateway") == 1
    fresh = gateway.client.post("/api/runs", json={"text": "again"}, headers=API).json()
    assert fresh["run_id"].startswith("api-") and fresh["run_id"] != "api-order-42"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b'{"text": ""}', b'{"text": 3}', b'{"text": "x", "session_id": ""}'],
)
def test_a_bad_run_request_is_refused_and_queues_nothing(gateway: Ingress, body: bytes) -> None:
    response = gateway.client.post(
        "/api/runs", content=body, headers={**API, "content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"] == "bad request"
    assert gateway.connection.llen("rq:queue:gateway") == 0


def test_deliveries_list_what_the_ingress_saw_refusals_included(gateway: Ingress) -> None:
    _mention(gateway, "Ev0SEEN0001")
    forged = gateway.client.post("/webhooks/slack", content=b"{}", headers={"X-Slack-Signature": "v0=00"})
    assert forged.status_code == 401
    found: list[dict[str, object]] = []
    for _ in range(50):  # the log is written after the answers, on the app's loop
        found = gateway.client.get("/api/deliveries", headers=API).json()["deliveries"]
        if len(found) == 2:
            break
        time.sleep(0.02)
    rejected, queued = found
    assert (queued["outcome"], queued["job_id"], queued["event"]) == (
        "queued",
        "slack-Ev0SEEN0001",
        "app_mention",
    )
    assert (
        rejected["outcome"] == "rejected"
        and rejected["status"] == 401
        and "X-Slack" in str(rejected["reason"])
    )
    only = gateway.client.get("/api/deliveries?outcome=rejected", headers=API).json()["deliveries"]
    assert [line["outcome"] for line in only] == ["rejected"]
    assert "v0=00" not in gateway.client.get("/api/deliveries", headers=API).text


def test_cancel_asks_the_workers_and_refuses_an_ended_run(gateway: Ingress) -> None:
    job_id = _mention(gateway, "Ev0CANCEL1")
    pubsub = gateway.connection.pubsub()
    pubsub.subscribe("gateway:cancel")
    assert gateway.client.post(f"/api/runs/{job_id}/cancel", headers=API).status_code == 202
    assert gateway.connection.get(f"gateway:cancel:{job_id}") is not None
    messages = [pubsub.get_message(timeout=1) for _ in range(2)]
    assert any(m and m["data"] == job_id.encode() for m in messages)
    _write(gateway.connection, job_id, status="succeeded")
    assert gateway.client.post(f"/api/runs/{job_id}/cancel", headers=API).status_code == 409
    assert gateway.client.post("/api/runs/slack-Ev0NONE/cancel", headers=API).status_code == 404


def test_retry_is_only_for_failed_runs(gateway: Ingress) -> None:
    job_id = _mention(gateway, "Ev0RETRY01")
    response = gateway.client.post(f"/api/runs/{job_id}/retry", headers=API)
    assert response.status_code == 409 and "queued" in response.json()["detail"]


def test_a_run_shows_its_feedback_one_rating_per_person(gateway: Ingress, redis_client: redis.Redis) -> None:
    job_id = _mention(gateway, "EvFeedback1")
    _write(redis_client, job_id, status="succeeded", reply="the answer")
    assert "feedback" not in gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    at = "2026-11-22T11:0{}:00.000000+00:00"
    assert runs.add_feedback(redis_client, job_id, rating="good", user="U1", at=at.format(1))
    assert runs.add_feedback(redis_client, job_id, rating="good", user="U2", at=at.format(2))
    assert runs.add_feedback(redis_client, job_id, rating="bad", user="U1", at=at.format(3))
    shown = gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    assert shown["feedback"] == [
        {"user": "U2", "rating": "good", "at": at.format(2)},
        {"user": "U1", "rating": "bad", "at": at.format(3)},
    ]
    listed = gateway.client.get("/api/runs", headers=API).json()["runs"]
    assert [r["feedback"] for r in listed if r["run_id"] == job_id] == [shown["feedback"]]


def test_feedback_for_an_unknown_run_changes_nothing(redis_client: redis.Redis) -> None:
    assert not runs.add_feedback(redis_client, "slack-EvNobody", rating="good", user="U1", at="now")
    assert redis_client.exists(keys.run("slack-EvNobody")) == 0
    assert runs.get_run(redis_client, "slack-EvNobody") is None
    with pytest.raises(ValueError, match="rating"):
        runs.add_feedback(redis_client, "slack-EvNobody", rating="meh", user="U1", at="now")


def test_feedback_keeps_the_records_time_to_live_and_every_concurrent_click(
    redis_client: redis.Redis,
) -> None:
    _write(redis_client, "slack-EvMany", status="succeeded")
    ttl = redis_client.ttl(keys.run("slack-EvMany"))
    with ThreadPoolExecutor(8) as pool:
        done = pool.map(
            lambda n: runs.add_feedback(redis_client, "slack-EvMany", rating="good", user=f"U{n}", at=str(n)),
            range(40),
        )
        assert all(done)
    record = runs.get_run(redis_client, "slack-EvMany") or {}
    assert len(record["feedback"]) == 40
    assert 0 < redis_client.ttl(keys.run("slack-EvMany")) <= ttl


def test_the_consoles_run_page_shows_who_rated_the_answer_escaped(
    gateway: Ingress, redis_client: redis.Redis
) -> None:
    job_id = _mention(gateway, "EvFeedback2")
    _write(redis_client, job_id, status="succeeded", reply="the answer")
    page = gateway.client.get(f"/console/runs/{job_id}", headers=API).text
    assert 'id="feedback" class="note">No feedback yet.' in page
    runs.add_feedback(redis_client, job_id, rating="bad", user="<b>U1</b>", at="2026-11-22T11:00:00+00:00")
    page = gateway.client.get(f"/console/runs/{job_id}", headers=API).text
    assert '<li data-rating="bad">👎 bad · &lt;b&gt;U1&lt;/b&gt; · 2026-11-22T11:00:00+00:00</li>' in page
