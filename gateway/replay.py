"""``gateway replay``: sign recorded payloads with the configured secrets and post them.

This is how a deployment is tested without waiting for Slack, GitHub or Stripe: every request
is signed afresh (current timestamp, first configured secret of its platform) and posted to
``<URL>/webhooks/<platform>``; one line per delivery says what the gateway answered.

Inputs are the project's recordings (``fixtures/<platform>/<name>.body`` plus its
``.headers.json``; a folder is searched recursively for ``*.body``) or plain JSON payloads with
``--platform``. ``--new-ids`` gives every recording a fresh delivery id (Slack ``event_id`` or
``trigger_id``, ``X-GitHub-Delivery``, Stripe ``id``) once, so the replay is new work and its
``--repeat`` copies are duplicates of it.

Exit codes: 0 every answer was 2xx, 1 some answer was not (or never came), 2 a usage or
settings error, found before anything is sent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.config import Settings
from gateway.errors import ConfigError, GatewayError, UsageError
from gateway.platforms import PLATFORMS
from gateway.queue import to_job_id
from gateway.recorded import SIGNATURE_HEADERS, Recording, load
from gateway.types import Delivery

__all__ = ["Answer", "collect", "job_id_of", "renew_ids", "replay_command", "send", "signing_secrets"]

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_DROPPED_HEADERS = SIGNATURE_HEADERS | {"content-length", "host"}


@dataclass(frozen=True)
class Answer:
    """What the gateway answered to one request; ``status`` is ``None`` when nothing came back."""

    status: int | None
    text: str
    seconds: float
    outcome: str = ""
    """The gateway's ``X-Gateway-Outcome``: ``queued`` (new work), ``duplicate`` (dropped), ..."""

    @property
    def is_ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


def replay_command(args: argparse.Namespace) -> int:
    """Collect, sign and post every recording ``args.repeat`` times; see the module docstring."""
    try:
        base_url = _base_url(args.url)
        recordings = collect([Path(p) for p in args.paths], platform=args.platform, event=args.event)
        if args.new_ids:
            recordings = [renew_ids(recording) for recording in recordings]
        keys = signing_secrets({r.platform for r in recordings}, dev=args.dev_secrets)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _send_all(recordings, keys, base_url=base_url, repeat=args.repeat)


def collect(paths: Sequence[Path], *, platform: str | None, event: str | None) -> list[Recording]:
    """Every recording named by ``paths`` (files, or folders searched for ``*.body``), in order.

    ``platform`` applies to plain payloads and to ``.body`` files outside a platform folder;
    ``event`` is the ``X-GitHub-Event`` of plain GitHub payloads.
    """
    recordings: list[Recording] = []
    for path in paths:
        if path.is_dir():
            bodies = sorted(path.rglob("*.body"))
            if not bodies:
                raise UsageError(f"{path}: no *.body recordings in this folder")
            recordings += [_recorded(body, platform) for body in bodies]
        elif path.is_file():
            recordings.append(_from_file(path, platform=platform, event=event))
        else:
            raise UsageError(f"{path}: no such file or folder")
    return recordings


def _from_file(path: Path, *, platform: str | None, event: str | None) -> Recording:
    if path.name.endswith(".body"):
        return _recorded(path, platform)
    if path.name.endswith((".headers.json", ".expect.json")):
        raise UsageError(f"{path}: a recording's companion file; give its .body")
    return _plain(path, platform=platform, event=event)


def _recorded(path: Path, platform: str | None) -> Recording:
    try:
        recording = load(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the recording ({exc})") from None
    if recording.platform in PLATFORMS:
        return recording
    if platform is None:
        folders = ", ".join(f"{name}/" for name in PLATFORMS)
        raise UsageError(f"{path}: not in a platform folder ({folders}); say --platform")
    return dataclasses.replace(recording, platform=platform)


def _plain(path: Path, *, platform: str | None, event: str | None) -> Recording:
    """A plain JSON payload, given the headers its platform would send with it."""
    if platform is None:
        raise UsageError(f"{path}: a plain payload needs --platform {'|'.join(PLATFORMS)}")
    body = path.read_bytes()
    try:
        if not isinstance(json.loads(body), dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise UsageError(f"{path}: a plain payload must be a JSON object ({exc})") from None
    try:
        headers = PLATFORMS[platform].plain_headers(event=event)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return Recording(platform=platform, name=path.stem, body=body, headers=headers, expect=None)


def renew_ids(recording: Recording) -> Recording:
    """``recording`` with a fresh delivery id; handshakes and unparseable bodies are kept as they are.

    The platform makes the id and puts it where it belongs (a header, or the body, parsed again
    to prove the id changed).
    """
    try:
        renewed = PLATFORMS[recording.platform].renew_delivery_id(recording.body, recording.headers)
    except GatewayError as exc:
        raise UsageError(f"{recording.platform}/{recording.name}: {exc}") from None
    if renewed is None:
        return recording
    body, headers = renewed
    return dataclasses.replace(recording, body=body, headers=headers)


def signing_secrets(platforms: set[str], *, dev: bool) -> dict[str, str]:
    """The secret each platform is signed with: its first configured one (rotation lists the new first).

    With ``dev``, a platform without a secret uses ``gateway dev``'s development value.
    Raises ``ConfigError`` naming the variable when a platform has no secret.
    """
    settings = Settings.from_environ()
    keys: dict[str, str] = {}
    for name in sorted(platforms):
        platform, configured = PLATFORMS[name], settings.signing_secrets(name)
        if configured:
            keys[name] = configured[0]
        elif dev:
            keys[name] = platform.dev_secret
        else:
            raise ConfigError(platform.secret_variable, f"is not set: cannot sign the {name} recordings")
    return keys


def send(client: httpx.Client, url: str, recording: Recording, *, secret: str) -> Answer:
    """Sign ``recording`` now and post it to ``url``; a transport error becomes an answer without status."""
    headers = {k: v for k, v in recording.headers.items() if k.lower() not in _DROPPED_HEADERS}
    headers |= PLATFORMS[recording.platform].sign(secret, recording.body, timestamp=int(time.time()))
    started = time.monotonic()
    try:
        response = client.post(url, content=recording.body, headers=headers)
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
    outcome = response.headers.get("x-gateway-outcome", "")
    return Answer(response.status_code, response.text, time.monotonic() - started, outcome)


def _send_all(recordings: list[Recording], keys: dict[str, str], *, base_url: str, repeat: int) -> int:
    total, failures, done = len(recordings) * repeat, 0, 0
    outcomes: dict[str, int] = {}
    progress = _Progress(total)
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            for recording in recordings:
                url = f"{base_url}/webhooks/{recording.platform}"
                for copy in range(1, repeat + 1):
                    answer = send(client, url, recording, secret=keys[recording.platform])
                    done += 1
                    failures += not answer.is_ok
                    outcomes[answer.outcome or "?"] = outcomes.get(answer.outcome or "?", 0) + 1
                    progress.clear()
                    print(_line(done, total, recording, answer, copy=copy, repeat=repeat), flush=True)
                    progress.show(done)
    except KeyboardInterrupt:
        progress.clear()
        print(f"replay: interrupted after {done} of {total}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout was closed early (``| head``): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    progress.clear()
    counted = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    summary = f"replay: {done} sent, {done - failures} answered 2xx, {failures} did not ({counted})"
    print(summary, file=sys.stderr)
    return 0 if failures == 0 else 1


def _line(done: int, total: int, recording: Recording, answer: Answer, *, copy: int, repeat: int) -> str:
    label = f"{recording.platform}/{recording.name}" + (f" (copy {copy}/{repeat})" if repeat > 1 else "")
    status = "---" if answer.status is None else str(answer.status)
    text = " ".join(answer.text.split())
    text = (text[:157] + "...") if len(text) > 160 else text
    job = f" job {job_id}" if (job_id := job_id_of(recording)) else ""
    outcome = f" {answer.outcome}" if answer.outcome else ""
    return f"[{done}/{total}] {status} {label}{job} {answer.seconds * 1000:.0f}ms{outcome} {text}".rstrip()


def job_id_of(recording: Recording) -> str | None:
    """The job id the gateway gives ``recording``'s delivery (what ``gateway runs watch`` takes);
    ``None`` for handshakes and bodies its platform cannot parse."""
    headers = {name.lower(): value for name, value in recording.headers.items()}
    try:
        parsed = PLATFORMS[recording.platform].parse(recording.body, headers)
    except GatewayError:
        return None
    return to_job_id(recording.platform, parsed.delivery_id) if isinstance(parsed, Delivery) else None


def _base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


class _Progress:
    """A counter on stderr, redrawn in place, when stderr is a terminal and stdout is not."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() and not sys.stdout.isatty()

    def show(self, done: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\rreplay: {done}/{self.total}")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
