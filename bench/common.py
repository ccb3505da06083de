"""What the benchmarks share: servers per fsync setting, timing, medians, the report's header.

Every benchmark starts its own nats-server (``EmbeddedNatsServer`` on a free port,
never an existing one on 4222), once per fsync setting: **durable**
(``sync_interval: always``, the service's default) and **relaxed** (the server's
default interval). The servers run with authentication, as ``inmail serve`` does:
each connection uses the credentials of the role it plays (``creds(server, role)``),
the raw baselines an ``admin`` user; ``secure=False`` runs a server without it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.eventstore import machine
from inmail.natsserver import EmbeddedNatsServer, NatsServerSettings
from inmail.security.installation import Installation, issue, secure

SETTINGS: tuple[str, ...] = ("durable", "relaxed")
"""Every figure is measured under both, durable first."""

TITLES = {
    "durable": "durable (`sync_interval: always`)",
    "relaxed": "relaxed (server default fsync)",
}


def log(message: str) -> None:
    """A progress line on stderr (the report goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def nats_server(data_dir: Path, setting: str, *, secure: bool = True) -> Iterator[EmbeddedNatsServer]:
    """A nats-server of our own on a free port, with the given fsync setting, secured unless told not."""
    settings = NatsServerSettings(
        data_dir=data_dir,
        port=0,
        durable=setting == "durable",
        security=installation_beside(data_dir) if secure else None,
    )
    with EmbeddedNatsServer(settings) as server:
        yield server


def installation_beside(data_dir: Path) -> Installation:
    """The keys of a benchmark server storing in ``data_dir``: in ``<data_dir>-auth``, with an admin."""
    installation = secure(data_dir.with_name(f"{data_dir.name}-auth"))
    if "admin" not in installation.users():
        issue(installation, "admin", "admin")
    return installation


def creds(server: EmbeddedNatsServer, role: str) -> str | None:
    """The credentials file of ``role`` for nats-py's ``user_credentials``; None on an open server."""
    path = server.creds(role)
    return str(path) if path else None


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


START_LOAD = load_average()
"""The load when the benchmark started (this module is imported first thing)."""


def median(values: Sequence[float]) -> float:
    """The median (the machine is noisy: each key figure is measured several times)."""
    return float(statistics.median(values))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the (sorted) values lie, nearest rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def fmt(value: float) -> str:
    """A figure for a table: thousands separators, one decimal below 100, two below 10."""
    if value != value:  # NaN
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(value: float, baseline: float) -> str:
    """``value / baseline`` as ``0.73x``."""
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def _version_of(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Machine and versions of what the benchmarks use."""
    info = machine()
    for package in ("faststream", "msgspec", "eventsourcing", "psycopg"):
        info[package] = _version_of(package)
    return info


def postgres_version(dsn: str) -> str:
    """The PostgreSQL server's version, or why it is unknown."""
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def header(command: str, plan: str, extra: Sequence[str] = ()) -> list[str]:
    """The report's first lines: when, what command, on what, under what load."""
    info = versions()
    return [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `{command}`  ",
        f"{info['cpus']} CPUs, {info['memory']} memory, nats-server {info['nats-server']}, "
        f"nats-py {info['nats-py']}, faststream {info['faststream']}, msgspec {info['msgspec']}, "
        f"Python {info['python']} ({info['platform']})  ",
        *[f"{line}  " for line in extra],
        f"Load average (1/5/15 min) at the start: {START_LOAD}; at the end: {load_average()}  ",
        plan,
        "",
    ]


def git_describe() -> str:
    """The working tree's commit, marked dirty when changed (figures belong to a code state)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else "unknown"


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Wall-clock and CPU seconds at one moment, for the client and the service."""

    wall: float
    client: float
    service: float

    @staticmethod
    def now(service_pid: int | None) -> CpuSample:
        """This process's CPU time and the service's (with its children)."""
        from bench.service import tree_cpu_seconds

        times = os.times()
        service = tree_cpu_seconds(service_pid) if service_pid else 0.0
        return CpuSample(time.perf_counter(), times.user + times.system, service)


def settings_sections(tables: Sequence[tuple[str, str]], target_lines: Sequence[str] = ()) -> list[str]:
    """Report parts: a section per fsync setting (its title, its tables), then the targets."""
    parts: list[str] = []
    for setting, tables_text in tables:
        parts += [f"### {TITLES[setting]}", "", tables_text]
    if target_lines:
        parts += ["### Targets", "", *[f"- {line}" for line in target_lines], ""]
    return parts


def publish_report(text: str, out: str | None) -> int:
    """Print the report, write it to ``out`` when given; the command's exit code."""
    print(text)
    if out:
        Path(out).write_text(text)
    return 0
