"""Fake Slack, GitHub and Stripe APIs: real HTTP servers on 127.0.0.1 that the real SDK clients talk to.

Each fake runs in a thread of the test process, records every call, can be told to fail the next
matching calls, and holds seedable platform state. Start one with ``with SlackFake() as slack:`` or
``start()``/``stop()``, and point the SDK at its ``base_url``.
"""

from __future__ import annotations

from tests.fakes.github_api import GitHubFake
from tests.fakes.server import Call, FakeServer
from tests.fakes.slack_api import SlackFake
from tests.fakes.stripe_api import StripeFake

__all__ = ["Call", "FakeServer", "GitHubFake", "SlackFake", "StripeFake"]
