"""A projection runner in a process of its own, for the kill -9 test: prints its positions as it goes.

Usage: python -m tests.integration.projections.rebuild_worker NATS_URL CREDS STORE_URL
"""

from __future__ import annotations

import asyncio
import json
import sys

from contracts import subjects
from eventstore import JetStreamEventStore, StreamSpec, connect
from projections.runner import Projections
from tests.integration.projections.support import SlowCredits, catalogue_with


async def main(nats_url: str, creds: str, store_url: str) -> None:
    nc = await connect(nats_url, creds=creds)
    store = JetStreamEventStore(nc, StreamSpec(name=subjects.EVENTS_STREAM, subjects=(subjects.EVENTS_ALL,)))
    # On a thread, so that killing this process kills the transaction in hand.
    projections = Projections(
        store, store_url, catalogue=catalogue_with(credits=SlowCredits), writer="thread", batch_size=10
    )
    await projections.start()
    while True:
        print(json.dumps(projections.positions()), flush=True)
        await asyncio.sleep(0.005)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
