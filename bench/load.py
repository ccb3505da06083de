"""Load generation for the benchmarks: closed- and open-loop runs, latencies.

The requests themselves go through the client library (``inmail.client``), as a
user's would; it waits for replies on one wildcard subscription of its own, so
on a 2-core machine the client side costs little of the CPU it shares with the
service and the nats-server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.common import median, percentile

Op = Callable[[int], Awaitable[None]]
"""One operation by worker ``index``; raises on failure."""


@dataclass(frozen=True, slots=True)
class Run:
    """One measured window: operations, seconds, and each operation's latency in seconds."""

    ops: int
    seconds: float
    latencies: Sequence[float]

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def latency(self, fraction: float) -> float:
        """A latency percentile, in milliseconds."""
        return percentile(sorted(self.latencies), fraction) * 1000


async def closed_loop(
    op: Op, in_flight: int, warmup: float, duration: float, on_window: Callable[[], None] | None = None
) -> Run:
    """``in_flight`` workers, each repeating ``op``; counts operations that start in the window.

    ``on_window`` is called when the window opens and when its last operation ended
    (to sample CPU times around exactly what is counted).
    """
    window_open = False
    window_used = asyncio.Event()
    latencies: list[float] = []
    last_end = 0.0

    async def worker(index: int) -> None:
        nonlocal last_end
        while True:
            counted = window_open
            if counted:
                window_used.set()
            elif window_used.is_set():
                return
            began = time.perf_counter()
            await op(index)
            if counted:
                last_end = time.perf_counter()
                latencies.append(last_end - began)

    workers = [asyncio.create_task(worker(i)) for i in range(in_flight)]
    try:
        await asyncio.sleep(warmup)
        if on_window is not None:
            on_window()
        window_open = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        await window_used.wait()
        window_open = False
        await asyncio.gather(*workers)
        if on_window is not None:
            on_window()
    finally:
        for task in workers:
            task.cancel()
    return Run(len(latencies), last_end - started, latencies)


async def sequential(op: Op, count: int) -> Run:
    """``count`` operations one after the other."""
    latencies = []
    started = time.perf_counter()
    for index in range(count):
        began = time.perf_counter()
        await op(index)
        latencies.append(time.perf_counter() - began)
    return Run(count, time.perf_counter() - started, latencies)


async def open_loop(op: Op, rate: float, warmup: float, duration: float, limit: int = 10_000) -> Run:
    """Start ``op`` at a fixed ``rate`` whatever the replies (no coordinated omission).

    Each latency runs from the moment the operation was due, not from when the loop
    got round to starting it, so a stalled client or service shows in the figures.
    At most ``limit`` operations are outstanding (a service that stops answering
    must not make the generator grow without bound); reaching it raises.
    """
    interval = 1.0 / rate
    latencies: list[float] = []
    outstanding: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []
    start = time.perf_counter() + 0.01
    measure_from = start + warmup
    end = measure_from + duration
    count = 0

    async def one(index: int, due: float) -> None:
        try:
            await op(index)
        except Exception as exc:
            errors.append(exc)
            return
        if due >= measure_from:
            latencies.append(time.perf_counter() - due)

    while True:
        due = start + count * interval
        if due >= end:
            break
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        if len(outstanding) >= limit:
            raise RuntimeError(f"more than {limit} requests outstanding: the service does not keep up")
        task = asyncio.create_task(one(count, due))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
        count += 1
    if outstanding:
        await asyncio.wait(set(outstanding))
    if errors:
        raise errors[0]
    return Run(len(latencies), duration, latencies)


def median_run(runs: Sequence[Run]) -> tuple[float, float, float]:
    """Median over runs of (rate, p50 ms, p99 ms)."""
    return (
        median([run.rate for run in runs]),
        median([run.latency(0.50) for run in runs]),
        median([run.latency(0.99) for run in runs]),
    )
