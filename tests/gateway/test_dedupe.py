"""Delivery id → job id mapping."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.dedupe import to_job_id

RQ_ID = re.compile(r"[A-Za-z0-9_-]+")


def test_ids_rq_accepts_are_kept_as_they_are() -> None:
    assert (
        to_job_id("github", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert to_job_id("slack", "Ev0PV52K21") == "slack-Ev0PV52K21"


def test_other_characters_and_underscore_are_escaped() -> None:
    assert to_job_id("slack", "1.2.a") == "slack-1_2e2_2ea"
    assert to_job_id("stripe", "evt_1N") == "stripe-evt_5f1N"
    assert to_job_id("slack", "é") == "slack-_c3_a9"


@given(st.text(min_size=1, max_size=40))
def test_every_job_id_is_one_rq_accepts(delivery_id: str) -> None:
    assert RQ_ID.fullmatch(to_job_id("slack", delivery_id))


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_delivery_ids_never_share_a_job_id(a: str, b: str) -> None:
    if a != b:
        assert to_job_id("stripe", a) != to_job_id("stripe", b)


def test_near_collisions_stay_apart() -> None:
    assert to_job_id("stripe", "a.b") != to_job_id("stripe", "a_2eb")
