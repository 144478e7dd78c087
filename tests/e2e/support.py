"""Getting recorded deliveries through the real ingress, for reply tests and end-to-end tests.

``Ingress`` is the app from ``create_app`` under starlette's ``TestClient`` with a fixed clock:
``post`` signs a body like the platform would and POSTs it; ``envelope`` reads back what was
queued, so handler tests get exactly the envelope a worker would.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.recorded import Recording, load
from gateway.types import Envelope
from tests.handlers.support import WorkerProcess
from tests.support.signing import sign

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# A GitHub App for the fake: its id, key pair, and the files its pull requests touch.
APP_ID = 4242
APP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
APP_PEM = APP_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
FILES = [
    {"filename": "README.md", "additions": 3, "deletions": 1},
    {"filename": "src/app/main.py", "additions": 40, "deletions": 12},
    {"filename": "src/app/util.py", "additions": 5, "deletions": 0, "status": "added"},
    {"filename": "docs/guide.md", "additions": 7, "deletions": 2},
]
SECRETS = {"slack": "e2e-slack-secret", "github": "e2e-github-secret", "stripe": "whsec_e2e"}


def recording(platform: str, name: str) -> Recording:
    """``fixtures/<platform>/<name>.body`` and its headers."""
    return load(FIXTURES / platform / f"{name}.body")


def with_form_fields(body: bytes, **fields: str) -> bytes:
    """A form body (slash command) with ``fields`` replaced, encoded as Slack does."""
    pairs = [
        (k, fields.pop(k) if k in fields else v) for k, v in parse_qsl(body.decode(), keep_blank_values=True)
    ]
    return urlencode(pairs + list(fields.items())).encode()


def with_json(body: bytes, **changes: Any) -> bytes:
    """A JSON body with top-level ``changes`` applied (nested dicts merge one level deep)."""
    data = json.loads(body)
    for key, value in changes.items():
        data[key] = (
            {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        )
    return json.dumps(data).encode()


class Ingress:
    """The real ASGI app on a fixed clock; every platform on, with the test secrets."""

    def __init__(self, client: TestClient, connection: redis.Redis, now: int) -> None:
        self.client, self.connection, self.now = client, connection, now

    def post(self, platform: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Sign ``body`` at the app's clock and POST it; returns the status."""
        signature = sign(platform, SECRETS[platform], body, self.now)
        response = self.client.post(f"/webhooks/{platform}", content=body, headers={**headers, **signature})
        return response.status_code

    def post_recording(self, rec: Recording, *, body: bytes | None = None) -> int:
        """POST a recorded delivery (optionally with an edited body)."""
        return self.post(rec.platform, rec.body if body is None else body, rec.headers)

    def envelope(self, job_id: str) -> Envelope:
        """The envelope queued under ``job_id``."""
        job = Queue("gateway", connection=self.connection, serializer=JSONSerializer).fetch_job(job_id)
        assert job is not None, f"nothing queued as {job_id}"
        envelope: Envelope = job.args[0]
        return envelope


API_TOKEN = "e2e-api-token"
API = {"Authorization": f"Bearer {API_TOKEN}"}


@contextmanager
def ingress(redis_url: str, *, api: bool = False) -> Iterator[Ingress]:
    """An ``Ingress`` on ``redis_url``; with ``api`` the runs API is on, for the ``API`` headers."""
    environ = {
        "REDIS_URL": redis_url,
        "SLACK_SIGNING_SECRET": SECRETS["slack"],
        "GITHUB_WEBHOOK_SECRET": SECRETS["github"],
        "STRIPE_WEBHOOK_SECRET": SECRETS["stripe"],
        **({"GATEWAY_API_TOKEN": API_TOKEN} if api else {}),
    }
    now = int(time.time())
    connection = redis.Redis.from_url(redis_url)
    with TestClient(create_app(Settings.from_environ(environ), clock=lambda: now)) as client:
        yield Ingress(client, connection, now)
    connection.close()


def kill_once_held(worker: WorkerProcess, held: threading.Event, *, timeout: float = 20) -> None:
    """SIGKILL ``worker`` as soon as the fake API starts holding one of its calls, and reap it.

    The held call has been applied by the fake, so the worker dies after its post landed but
    before it could record that: the crash point a rerun must recover from.
    """
    with worker:
        assert held.wait(timeout), "the worker never made the held call"
        worker.signal(signal.SIGKILL)
        worker.wait()
