"""Each platform signs as it verifies (``Platform.sign``, for replay): the tests' own signer and the
verifiers agree."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidSignature
from gateway.platforms import PLATFORMS
from tests.support import signing as independent

BODY = b'{"id":"evt_1","type":"event_callback","event_id":"Ev1"}'
NOW = 1_763_800_000


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_signature_headers_match_the_independent_signer(platform: str) -> None:
    ours = PLATFORMS[platform].sign("s3cret", BODY, timestamp=NOW)
    theirs = independent.sign(platform, "s3cret", BODY, NOW)
    if platform == "stripe":
        # The independent signer adds a decoy v0; the t= and v1= parts must be the same.
        assert theirs["Stripe-Signature"].startswith(ours["Stripe-Signature"] + ",")
    else:
        assert ours.items() <= theirs.items()


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_the_gateways_verifier_accepts_it_and_refuses_another_secret(platform: str) -> None:
    headers = {k.lower(): v for k, v in PLATFORMS[platform].sign("s3cret", BODY, timestamp=NOW).items()}
    PLATFORMS[platform].verify(BODY, headers, secrets=("s3cret",), now=NOW)
    with pytest.raises(InvalidSignature):
        PLATFORMS[platform].verify(BODY, headers, secrets=("other",), now=NOW)


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_every_header_sign_makes_is_a_declared_signature_header(platform: str) -> None:
    made = {name.lower() for name in PLATFORMS[platform].sign("s3cret", BODY, timestamp=NOW)}
    assert made and made <= PLATFORMS[platform].signature_headers
