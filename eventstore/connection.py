"""Connecting to NATS with the options every InMail process shares."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import nats
from nats.aio.client import Client as NATS


class NatsUnreachable(ConnectionError):
    """The NATS server at the given URL did not accept a connection."""


def seed_urls(url: str) -> list[str]:
    """The servers of ``nats://a:4222,nats://b:4222``: every seed of a cluster, in the order given.

    nats-py takes a list; a comma inside one URL string it would parse as part of the host.
    """
    seeds = [part.strip() for part in url.split(",") if part.strip()]
    if not seeds:
        raise NatsUnreachable(f"no NATS URL in {url!r}")
    return seeds


async def connect(
    url: str, *, name: str = "inmail", connect_timeout: float = 2.0, creds: Path | str | None = None
) -> NATS:
    """Connect with reconnection forever and no publish buffering while disconnected.

    ``url`` may name several seeds, comma-separated (the nodes of a cluster): the connection
    goes to whichever is up and, once connected, to any node the cluster announces.

    ``creds`` is a NATS credentials file (user JWT and nkey seed) for a server
    that requires authentication.

    ``pending_size=0`` makes a publish during a reconnection fail at once instead of
    being buffered and sent later: a command answered ``UNAVAILABLE`` must never be
    recorded afterwards by a buffered write.
    """
    seen: deque[str] = deque(maxlen=8)

    async def remember(exc: Exception) -> None:
        # nats-py prints every connection error to stderr by default; reconnection is
        # handled. The latest errors are kept to explain a failed connect (bad or no credentials).
        seen.append(str(exc))

    try:
        nc = await nats.connect(
            seed_urls(url),
            name=name,
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            # nats-py applies this limit to the first connection too (one attempt per seed):
            # keep it small so an unreachable URL fails fast, then reconnect forever once connected.
            max_reconnect_attempts=1,
            reconnect_time_wait=0.25,
            pending_size=0,
            max_outstanding_pings=3,
            ping_interval=5,
            error_cb=remember,
            disconnected_cb=_quiet_event,
            reconnected_cb=_quiet_event,
            closed_cb=_quiet_event,
            **({"user_credentials": str(creds)} if creds else {}),
        )
    except Exception as exc:
        refusals = [reason for reason in seen if "authorization" in reason.lower()]
        if refusals:
            used = f"the credentials {creds}" if creds else "a connection without credentials"
            raise NatsUnreachable(f"NATS at {url} refused {used}: {refusals[-1]}") from exc
        raise NatsUnreachable(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def _quiet_event() -> None:
    return None
