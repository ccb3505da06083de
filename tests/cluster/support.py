"""What the cluster tests share: a real 3-node cluster on free loopback ports (``inmail.devcluster``,
the one ``inmail cluster up`` starts: operator mode with the product's account and roles,
routes, a store folder per node, every write fsynced), and the checks beyond the audit of
``tests.faults``: the longest stretch without a successful command, every InMail in one inbox.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgspec

from contracts import subjects
from inmail.devcluster import LoopbackCluster
from inmail.security.installation import issue
from tests.faults.ledger import Ledger
from tests.faults.workload import Cast, Clients
from tests.serve_process import free_port


def loopback_cluster(root: Path, *, durable: bool = True) -> LoopbackCluster:
    """Three nodes on free loopback ports, keys in ``root`` with an ``admin`` user for the tests'
    own streams and look-ups."""
    cluster = LoopbackCluster.create(
        root, [free_port() for _ in range(3)], [free_port() for _ in range(3)], durable=durable
    )
    issue(cluster.installation, "admin", "admin")
    return cluster


def longest_gap(ledger: Ledger, since: datetime, until: datetime) -> float:
    """Seconds of the longest stretch after ``since`` (up to ``until``) with no attempt answered ok."""
    ends = sorted(
        answer.ended_at
        for command in ledger.commands.values()
        for answer in command.answers
        if answer.reply is not None and answer.reply["ok"] and since <= answer.ended_at <= until
    )
    marks = [since, *ends, until]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(marks))


async def check_inboxes(clients: Clients, cast: Cast, last_seq: int) -> int:
    """Every InMail the clients were told was sent is in its recipient's inbox, in no other and
    once; no inbox holds one they were not told of. The number of InMails checked."""
    nc = clients.connections[0]
    sent = {
        c.ok["data"]["inmail_id"]: c.body["recipient_id"]
        for c in clients.ledger.acknowledged()
        if c.name == "SendInMail" and c.ok is not None
    }
    found: Counter[str] = Counter()
    owner: dict[str, str] = {}
    for recipient in cast.recipients:
        before: str | None = None
        while True:
            query = {"member_id": recipient, "box": "received", "limit": 200, "min_seq": last_seq}
            if before is not None:
                query["before"] = before
            reply = await nc.request(subjects.query("Inbox"), msgspec.json.encode(query), timeout=10)
            answer = msgspec.json.decode(reply.data)
            assert answer["ok"], answer
            for item in answer["data"]["items"]:
                found[item["inmail_id"]] += 1
                owner[item["inmail_id"]] = recipient
            before = answer["data"]["next"]
            if before is None:
                break
    assert {i: n for i, n in found.items() if n != 1} == {}, "an InMail in an inbox twice"
    assert set(found) == set(sent), (
        f"in no inbox: {sorted(set(sent) - set(found))[:5]}; unknown: {sorted(set(found) - set(sent))[:5]}"
    )
    assert {i: owner[i] for i in sent} == sent, "an InMail in the wrong inbox"
    return len(sent)
