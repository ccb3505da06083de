"""What ``Health`` says about the streams and buckets the service needs.

Each one is asked for its info, all at once and with a short deadline, so that
``Health`` answers in about that long even when JetStream does not: an answer that
says "unreachable" beats no answer. A stream or bucket holds the service back
(``problem``) when it is missing or unreachable, has no leader, has a replica
offline or behind, or has another replica count than ``--replicas`` asks for
(reported, never changed behind the operator's back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from contracts.queries import Dependency
from inmail.streams import STORES, Store

CHECK_TIMEOUT = 2.0
"""Seconds a stream's info may take: beyond that it counts as unreachable."""


class DependencyCheck:
    """Reports every stream and bucket of the product; called once per ``Health`` answer."""

    def __init__(
        self, nc: NATS, replicas: int, stores: Sequence[Store] = STORES, *, timeout: float = CHECK_TIMEOUT
    ) -> None:
        self.js = nc.jetstream(timeout=timeout)
        self.replicas = replicas
        self.stores = tuple(stores)
        self.timeout = timeout

    async def __call__(self) -> dict[str, Dependency]:
        """Name -> the state of each stream and bucket, as JetStream reports it now."""
        found = await asyncio.gather(*(self._check(store) for store in self.stores))
        return {store.name: dependency for store, dependency in zip(self.stores, found, strict=True)}

    async def _check(self, store: Store) -> Dependency:
        try:
            info = await self.js.stream_info(store.stream)
        except NotFoundError:
            return self._absent(store, f"missing: JetStream has no {store.kind} {store.name}")
        except (NatsError, TimeoutError) as exc:
            return self._absent(
                store,
                f"unreachable: JetStream did not answer for it within {self.timeout:g}s "
                f"({type(exc).__name__}; no leader, no quorum, or no server)",
            )
        return judge(store, info, self.replicas)

    def _absent(self, store: Store, problem: str) -> Dependency:
        return Dependency(kind=store.kind, reachable=False, replicas_wanted=self.replicas, problem=problem)


def judge(store: Store, info: StreamInfo, wanted: int) -> Dependency:
    """A stream's info as a ``Dependency``, with what keeps it from serving every command now."""
    cluster = info.cluster
    leader = cluster.leader if cluster is not None else None
    peers = (cluster.replicas if cluster is not None else None) or []
    configured = info.config.num_replicas or 1
    problems = [] if leader else ["no leader: nothing can be written to it"]
    for peer in peers:
        if peer.offline:
            problems.append(f"replica {peer.name} is offline")
        elif not peer.current:
            problems.append(f"replica {peer.name} is behind by {peer.lag or 0} operations")
    if configured != wanted:
        problems.append(
            f"{configured} replica{'s' if configured != 1 else ''} where --replicas asks for {wanted}; "
            f"left as it is (change it on purpose: nats stream edit {store.stream} --replicas {wanted})"
        )
    return Dependency(
        kind=store.kind,
        reachable=True,
        replicas=configured,
        replicas_wanted=wanted,
        replicas_current=(1 if leader else 0) + sum(1 for p in peers if p.current and not p.offline),
        leader=leader,
        last_seq=info.state.last_seq,
        problem="; ".join(problems) or None,
    )
