"""Session history in Redis: isolated per session, bounded in length and age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from hypothesis import given
from hypothesis import strategies as st

from handlers.agent import Turn
from handlers.state import keys, sessions


def _append(client: redis.Redis, key: str, *texts: str, at: datetime | None = None) -> None:
    stamp = (at or datetime.now(UTC)).isoformat()
    with client.pipeline() as pipe:
        sessions.append_turns(pipe, key, [Turn("user", text, stamp, "d") for text in texts])
        pipe.execute()


def test_sessions_never_see_each_other(redis_client: redis.Redis) -> None:
    _append(redis_client, "slack:T:C:1", "mine")
    _append(redis_client, "slack:T:C:2", "theirs")
    assert [t.text for t in sessions.load_history(redis_client, "slack:T:C:1")] == ["mine"]


def test_a_turn_stored_under_the_wrong_key_is_ignored(redis_client: redis.Redis) -> None:
    _append(redis_client, "slack:T:C:2", "theirs")
    stolen = redis_client.lrange(keys.session_history(sessions.session_id("slack:T:C:2")), 0, -1)
    redis_client.rpush(keys.session_history(sessions.session_id("slack:T:C:1")), *stolen)
    assert sessions.load_history(redis_client, "slack:T:C:1") == ()


def test_history_is_bounded_in_length_and_age(redis_client: redis.Redis) -> None:
    old = datetime.now(UTC) - timedelta(seconds=sessions.MAX_AGE + 60)
    _append(redis_client, "aged", "ancient", at=old)
    _append(redis_client, "aged", "fresh")
    assert [t.text for t in sessions.load_history(redis_client, "aged")] == ["fresh"]
    _append(redis_client, "k", *[f"t{i}" for i in range(sessions.MAX_TURNS + 5)])
    turns = sessions.load_history(redis_client, "k")
    assert len(turns) == sessions.MAX_TURNS and turns[-1].text == f"t{sessions.MAX_TURNS + 4}"
    assert redis_client.ttl(keys.session_history(sessions.session_id("k"))) <= sessions.MAX_AGE


@given(a=st.lists(st.text(), min_size=1, max_size=4), b=st.lists(st.text(), min_size=1, max_size=4))
def test_distinct_parts_never_make_the_same_session_key(a: list[str], b: list[str]) -> None:
    if a != b:
        assert sessions.build_key("slack", *a) != sessions.build_key("slack", *b)
