"""``gateway.signing`` signs as each platform does: the tests' own signer and the verifiers agree."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidSignature
from gateway.platforms import PLATFORMS
from gateway.signing import sign
from tests.support import signing as independent

BODY = b'{"id":"evt_1","type":"event_callback","event_id":"Ev1"}'
NOW = 1_763_800_000


@pytest.mark.parametrize("platform", ["slack", "github", "stripe"])
def test_signature_headers_match_the_independent_signer(platform: str) -> None:
    ours = sign(platform, "s3cret", BODY, timestamp=NOW)
    theirs = independent.sign(platform, "s3cret", BODY, NOW)
    if platform == "stripe":
        # The independent signer adds a decoy v0; the t= and v1= parts must be the same.
        assert theirs["Stripe-Signature"].startswith(ours["Stripe-Signature"] + ",")
    else:
        assert ours.items() <= theirs.items()


@pytest.mark.parametrize("platform", ["slack", "github", "stripe"])
def test_the_gateways_verifier_accepts_it_and_refuses_another_secret(platform: str) -> None:
    headers = {k.lower(): v for k, v in sign(platform, "s3cret", BODY, timestamp=NOW).items()}
    PLATFORMS[platform].verify(BODY, headers, secrets=("s3cret",), now=NOW)
    with pytest.raises(InvalidSignature):
        PLATFORMS[platform].verify(BODY, headers, secrets=("other",), now=NOW)


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="teams"):
        sign("teams", "s3cret", BODY, timestamp=NOW)
