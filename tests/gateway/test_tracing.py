"""GATEWAY_TRACING: off by default and free on the ack path; otlp needs the otel extra.

Processes are fresh interpreters here, as in ``tests/test_surface.py``: what a module imports
can only be seen from a process that had not imported it yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway import tracing
from gateway.config import Settings
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
# Makes every import of opentelemetry fail, as in an install without the otel extra.
_WITHOUT_OTEL = "import sys; sys.modules['opentelemetry'] = None\n"


def _python(script: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_ENV_FILE": "/dev/null", **(env or {})},
        check=False,
    )


def test_tracing_is_off_unless_set() -> None:
    assert Settings.from_environ({}).tracing == "off"
    assert Settings.from_environ({"GATEWAY_TRACING": "OTLP"}).tracing == "otlp"
    assert Settings.from_environ({"GATEWAY_TRACING": "otlp"}).as_variables()["GATEWAY_TRACING"] == "otlp"


def test_an_unknown_tracing_mode_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_TRACING: must be one of off, otlp, got 'jaeger'"):
        Settings.from_environ({"GATEWAY_TRACING": "jaeger"})


def test_otlp_without_the_extra_is_a_config_error_naming_it() -> None:
    script = _WITHOUT_OTEL + textwrap.dedent(
        """
        from gateway.config import Settings
        from gateway.errors import ConfigError
        Settings.from_environ({})  # off needs nothing
        try:
            Settings.from_environ({"GATEWAY_TRACING": "otlp"})
        except ConfigError as exc:
            print(exc)
        """
    )
    result = _python(script)
    assert result.returncode == 0, result.stderr
    assert "GATEWAY_TRACING: is otlp but OpenTelemetry is not installed" in result.stdout
    assert tracing.EXTRA in result.stdout


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_with_otlp_but_no_extra(command: str, redis_url: str) -> None:
    script = _WITHOUT_OTEL + f"from gateway.cli import main; sys.exit(main([{command!r}]))"
    env = {"GATEWAY_TRACING": "otlp", "REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": "s"}
    result = _python(script, env=env)
    assert result.returncode == 2
    assert "GATEWAY_TRACING: is otlp but OpenTelemetry is not installed" in result.stderr
    assert f"pip install '{tracing.EXTRA}'" in result.stderr


def test_with_tracing_off_the_ack_path_never_imports_opentelemetry(redis_url: str) -> None:
    """Beyond what redis-py imports itself: when OpenTelemetry's SDK is installed, redis-py 8
    imports its metrics part at ``import redis`` (for its own opt-in metrics), with or without us."""
    script = textwrap.dedent(
        """
        import json, sys, time
        import redis, redis.asyncio
        OTEL = ("opentelemetry", "gateway.otel")
        by_redis = {m for m in sys.modules if m.startswith(OTEL)}
        from starlette.testclient import TestClient
        from gateway.app import create_app
        from gateway.config import Settings
        from tests.support.signing import slack_headers

        settings = Settings.from_environ({"REDIS_URL": sys.argv[1], "SLACK_SIGNING_SECRET": "s"})
        event = {"type": "app_mention", "text": "hi", "channel": "C1", "ts": "1.2"}
        body = json.dumps({"type": "event_callback", "event_id": "Ev0OFF", "event": event}).encode()
        headers = {"content-type": "application/json", **slack_headers("s", body, int(time.time()))}
        with TestClient(create_app(settings)) as client:
            answer = client.post("/webhooks/slack", content=body, headers=headers)
        loaded = sorted(m for m in sys.modules if m.startswith(OTEL) and m not in by_redis)
        outcome = answer.headers.get("x-gateway-outcome")
        print(json.dumps({"status": answer.status_code, "outcome": outcome, "loaded": loaded}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert (seen["status"], seen["outcome"]) == (200, "queued")
    assert seen["loaded"] == []  # not the tracer, the SDK's tracing, the exporter, nor gateway.otel


def test_the_envelope_carrier_keeps_only_the_w3c_headers() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = {"trace": {"traceparent": traceparent, "tracestate": "a=b", "baggage": "user=x", "n": 1}}
    assert tracing.parent_of(envelope) == {"traceparent": traceparent, "tracestate": "a=b"}
    assert tracing.parent_of({"trace": {"traceparent": 7}}) == {}
    assert tracing.parent_of({"trace": "junk"}) == tracing.parent_of({}) == {}


def test_error_type_is_the_exception_class_never_its_message() -> None:
    assert tracing.error_type(TimeoutError("customer text")) == "TimeoutError"
    assert tracing.error_type(ConfigError("X", "customer text")) == "gateway.errors.ConfigError"


def test_spans_cost_a_shared_no_op_while_tracing_is_off() -> None:
    assert tracing.tracer() is None and tracing.carrier() is None
    with tracing.span("anything", attributes={"a": 1}) as first, tracing.span("other") as second:
        first.set({"b": 2})
        first.fail("x")
    assert first is second
