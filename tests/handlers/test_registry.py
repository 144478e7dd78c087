"""The worker's registry matches the ingress's (and the runs API's): every job path they name runs,
every platform has a session."""

from __future__ import annotations

import importlib
import inspect

from gateway.api import API_JOB_PATH
from gateway.platforms import PLATFORMS as INGRESS
from handlers import registry
from tests.handlers.support import slack_envelope


def test_every_job_path_the_ingress_names_is_a_coroutine_job_function() -> None:
    for job_path in [platform.job_path for platform in INGRESS.values()] + [API_JOB_PATH]:
        module_name, _, function = job_path.rpartition(".")
        assert inspect.iscoroutinefunction(getattr(importlib.import_module(module_name), function))


def test_the_worker_knows_the_ingress_platforms_and_the_api() -> None:
    assert set(registry.PLATFORMS) == set(INGRESS) | {"api"}
    assert all(name == platform.name for name, platform in registry.PLATFORMS.items())


def test_the_session_of_an_envelope_is_its_platforms_answer() -> None:
    envelope = slack_envelope("Ev1", thread="1.5", channel="C9")
    assert registry.session_key(envelope) == registry.PLATFORMS["slack"].session_key(envelope)  # type: ignore[arg-type]
    assert registry.session_key(envelope) == "slack:T1:C9:1.5"
    assert registry.session_key({**envelope, "platform": "teams"}) is None
