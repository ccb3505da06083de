"""Run the InMail service in a process of its own, for the benchmarks.

``python -m bench.service --nats URL --store URL [--no-projections] [--trust-client-time] [--no-metrics]
[--replicas N]``
starts ``InMailService`` against a server the benchmark started, prints ``ready`` on
stdout once it answers, and stops cleanly on SIGTERM or SIGINT. Unlike ``inmail serve``
it can leave the projections and the scheduler out, so a benchmark measures the
command side alone; the load generator never shares the service's event loop.

``ServiceProcess`` is the benchmarks' handle on such a process: start, stop, and its
CPU time and resident memory, read from ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

READY = "ready"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live child processes (the projections' writer)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        try:
            total += cpu_seconds(child)
        except (OSError, IndexError):
            continue
    return total


def children(pid: int) -> list[int]:
    """Direct child processes of a process (started from any of its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(part) for part in task.read_text().split()]
        except OSError:
            continue
    return found


class ServiceProcess:
    """``python -m bench.service`` as a child process; a context manager."""

    def __init__(
        self,
        nats_url: str,
        store_url: str,
        *,
        projections: bool = False,
        trust_client_time: bool = False,
        creds: Path | None = None,
        metrics: bool = True,
        replicas: int = 1,
        key_dir: Path | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.args = [sys.executable, "-m", "bench.service", "--nats", nats_url, "--store", store_url]
        if not projections:
            self.args.append("--no-projections")
        if trust_client_time:
            self.args.append("--trust-client-time")
        if creds:
            self.args += ["--creds", str(creds)]
        if not metrics:
            self.args.append("--no-metrics")
        if replicas != 1:
            self.args += ["--replicas", str(replicas)]
        if key_dir is not None:
            self.args += ["--key-dir", str(key_dir)]
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the service process is not running")
        return self._process.pid

    def start(self) -> None:
        """Start the service and wait until it says it is ready."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting (several services start in parallel)."""
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                self.args,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
        finally:
            if self.log_path and not isinstance(log, int):
                log.close()

    def wait_ready(self) -> None:
        """Wait until the launched service says it is ready."""
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if line.strip() == READY:
                return
            if not line and self._process.poll() is not None:
                raise RuntimeError(f"the service exited with code {self._process.returncode}")
        self.stop()
        raise RuntimeError("the service did not become ready in time")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the service and its child processes."""
        return tree_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """The service process's resident memory now."""
        return rss_bytes(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, SIGKILL when it does not stop in time."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve(args: argparse.Namespace) -> None:
    """Run the service until SIGTERM or SIGINT."""
    from inmail.app import InMailService, ServiceSettings

    service = InMailService(
        ServiceSettings(
            nats_url=args.nats,
            nats_creds=args.creds,
            store_url=args.store,
            trust_client_time=args.trust_client_time,
            projections=not args.no_projections,
            scheduler=False,
            cache_size=args.cache_size,
            metrics=not args.no_metrics,
            replicas=args.replicas,
            key_dir=args.key_dir,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    try:
        print(READY, flush=True)
        await stop.wait()
    finally:
        await service.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse the flags and serve."""
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__)
    parser.add_argument("--nats", required=True, help="NATS URL of a server the benchmark started")
    parser.add_argument("--store", required=True, help="read-model store URL (sqlite:///path)")
    parser.add_argument("--creds", type=Path, help="the service's NATS credentials file")
    parser.add_argument("--no-projections", action="store_true", help="the command side only")
    parser.add_argument("--trust-client-time", action="store_true", help="honour occurred_at")
    parser.add_argument("--cache-size", type=int, default=200_000, help="member states cached")
    parser.add_argument("--no-metrics", action="store_true", help="record no Prometheus series")
    parser.add_argument("--replicas", type=int, default=1, help="replicas of the stores it creates")
    parser.add_argument(
        "--key-dir", type=Path, help="the installation's key folder (default: datakeys beside the store)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
