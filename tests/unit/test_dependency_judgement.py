"""How a stream's cluster info becomes Health's verdict on it (the cases one server cannot show)."""

from __future__ import annotations

from typing import Any

from nats.js.api import StreamInfo

from inmail.health import judge
from inmail.streams import Store

MEMBERS = Store("INMAIL_MEMBERS", "stream")


def info(replicas: int, cluster: dict[str, Any]) -> StreamInfo:
    stream: StreamInfo = StreamInfo.from_response(
        {
            "config": {"name": MEMBERS.name, "num_replicas": replicas},
            "state": {"messages": 7, "bytes": 700, "first_seq": 1, "last_seq": 7, "consumer_count": 0},
            "cluster": cluster,
        }
    )
    return stream


def peer(name: str, *, current: bool = True, offline: bool = False, lag: int = 0) -> dict[str, Any]:
    return {"name": name, "current": current, "offline": offline, "lag": lag, "active": 1}


def test_three_current_replicas_with_a_leader_are_fine() -> None:
    verdict = judge(MEMBERS, info(3, {"leader": "n1", "replicas": [peer("n2"), peer("n3")]}), 3)
    assert verdict.problem is None
    assert (verdict.replicas, verdict.replicas_current, verdict.leader, verdict.last_seq) == (3, 3, "n1", 7)


def test_a_stream_without_a_leader_cannot_take_writes() -> None:
    verdict = judge(MEMBERS, info(3, {"replicas": [peer("n2"), peer("n3")]}), 3)
    assert verdict.problem == "no leader: nothing can be written to it"
    assert verdict.replicas_current == 2


def test_an_offline_or_lagging_replica_is_named() -> None:
    replicas = [peer("n2", current=False, offline=True), peer("n3", current=False, lag=42)]
    cluster = {"leader": "n1", "replicas": replicas}
    verdict = judge(MEMBERS, info(3, cluster), 3)
    assert verdict.problem == "replica n2 is offline; replica n3 is behind by 42 operations"
    assert verdict.replicas_current == 1


def test_a_stream_left_at_one_replica_when_three_are_asked_for_is_reported() -> None:
    verdict = judge(MEMBERS, info(1, {"leader": "n1"}), 3)
    assert verdict.problem == (
        "1 replica where --replicas asks for 3; left as it is "
        "(change it on purpose: nats stream edit INMAIL_MEMBERS --replicas 3)"
    )


def test_a_bucket_is_named_by_its_bucket_and_edited_through_its_stream() -> None:
    bucket = Store("INMAIL_SCHEDULER", "bucket")
    verdict = judge(bucket, info(1, {"leader": "n1"}), 3)
    assert verdict.kind == "bucket"
    assert "nats stream edit KV_INMAIL_SCHEDULER --replicas 3" in (verdict.problem or "")
