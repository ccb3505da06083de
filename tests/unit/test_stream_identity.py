"""Telling the stream a reader follows from one that took its name: gone, replaced, behind, purged."""

from __future__ import annotations

from nats.js import api

from eventstore import Followed, identity_of, replacement
from eventstore.identity import ID_KEY


def info(*, minted: str | None = "a1", first: int = 1, last: int = 10, created: str = "2026-01-01T00:00:00Z"):
    config: dict[str, object] = {"name": "EVENTS"}
    if minted is not None:
        config["metadata"] = {ID_KEY: minted, "_nats.ver": "2.15.1"}
    state = {
        "messages": max(last - first + 1, 0),
        "bytes": 0,
        "first_seq": first,
        "last_seq": last,
        "consumer_count": 0,
    }
    return api.StreamInfo.from_response({"config": config, "state": state, "created": created})


def test_the_identity_is_the_minted_id_or_else_the_creation_time():
    assert identity_of(info(minted="a1")) == "id a1"
    assert identity_of(info(minted=None)) == "created 2026-01-01T00:00:00+00:00"


def test_the_stream_followed_is_no_replacement_however_far_it_grew():
    assert replacement("EVENTS", info(last=500), Followed("id a1", 1, 10)) is None


def test_a_stream_with_another_id_is_a_replacement():
    reason = replacement("EVENTS", info(minted="b2", last=0, first=0), Followed("id a1", 1, 10))
    assert reason is not None and reason.startswith("stream EVENTS was replaced")


def test_a_stream_gone_is_a_replacement_for_a_reader_that_saw_it_or_recorded_it():
    assert replacement("EVENTS", None, Followed("id a1", 1, 10)) == (
        "stream EVENTS is gone (this service has seen it up to seq 10)"
    )
    assert replacement("EVENTS", None, Followed("id a1")) == "stream EVENTS is gone"
    assert replacement("EVENTS", None, Followed(None)) is None


def test_a_stream_behind_what_the_reader_saw_is_a_replacement_even_with_the_same_id():
    reason = replacement("EVENTS", info(last=7), Followed("id a1", 1, 10))
    assert reason is not None and "ends at seq 7, before seq 10" in reason


def test_a_purged_stream_is_a_replacement_for_a_reader_built_from_before_the_purge():
    purged = info(first=11, last=10)  # what JetStream reports after purging ten events
    assert "was purged: its events now start at seq 11" in (
        replacement("EVENTS", purged, Followed("id a1")) or ""
    )
    assert replacement("EVENTS", purged, Followed("id a1", from_seq=11, position=10)) is None


def test_a_new_empty_stream_is_followed_from_its_first_sequence():
    assert replacement("EVENTS", info(first=0, last=0), Followed(None)) is None
