"""The peer: the same decision as an ``eventsourcing.Application``, on PostgreSQL and SQLite.

``python -m bench.peer [--quick] [--out FILE] [--dsn DSN]``. The decision is the
heart of a charged SendInMail: an aggregate per member holds a credit balance;
sending debits one credit when the balance is at least 1 and refuses otherwise.
1,000 member aggregates, the library's aggregate cache on
(``AGGREGATE_CACHE_MAXSIZE``), the library's own persistence modules
(``PERSISTENCE_MODULE=eventsourcing.postgres`` and ``eventsourcing.sqlite``), 1 and 8
threads each picking members at random; a conflict (``IntegrityError``) is retried
on fresh state. Each InMailSent event carries the InMail (ids, subject and the
body the service benchmarks send).

Both fsync settings, as for the nats-server:

- **durable**: PostgreSQL as configured (``fsync`` and ``synchronous_commit`` on: a
  commit waits for its WAL flush); SQLite as the library opens it (WAL journal,
  ``synchronous=FULL``: an fsync per commit).
- **relaxed**: PostgreSQL with ``synchronous_commit=off`` for the benchmark's sessions
  (``PGOPTIONS``; WAL flushed in the background); SQLite with ``synchronous=NORMAL``
  (WAL synced at checkpoints only).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteDatastore, SQLiteFactory
from eventsourcing.utils import Environment, EnvType

from bench.common import (
    SETTINGS,
    fmt,
    header,
    log,
    median,
    percentile,
    postgres_version,
    publish_report,
    ratio,
)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench_peer"
MEMBERS = 1_000
THREADS = (1, 8)
BACKENDS = ("postgres", "sqlite")
MAX_ATTEMPTS = 20
TITLES = {
    "durable": "durable (a commit waits for its fsync, like `sync_interval: always`)",
    "relaxed": "relaxed (commits without an fsync each, like the server default)",
}

SUBJECT = "Staff backend engineer, event-driven payments platform (remote, EU)"
BODY = (
    "Hi Dana, I lead hiring for the payments platform team. Your talk on idempotent "
    "consumers stood out: we are moving our ledger to an event-sourced design on NATS "
    "and need someone who has lived with exactly-once projections in production. The "
    "role is fully remote within the EU, with a quarterly on-site week. Would you be "
    "open to a 20-minute call next week? I can share the architecture notes first."
)


# ------------------------------------------------------------------ the domain, the library's way


class Member(Aggregate):
    """A member's credit balance."""

    def __init__(self, credits: int) -> None:
        self.credits = credits
        self.sent = 0

    @event("InMailSent")
    def record_sent(self, inmail_id: str, recipient_id: str, subject: str, body: str) -> None:
        """One InMail went out: one credit spent (the check happened before, in ``send``)."""
        self.credits -= 1
        self.sent += 1


class InMailPeer(Application[uuid.UUID]):
    """Members and their sends; ``send`` is the decision under test."""

    def register(self, credits: int) -> uuid.UUID:
        """A new member with ``credits``."""
        member = Member(credits)
        self.save(member)
        return member.id

    def send(self, member_id: uuid.UUID, recipient_id: str) -> bool:
        """Debit one credit if the balance allows; False (nothing written) otherwise."""
        for _ in range(MAX_ATTEMPTS):
            member: Member = self.repository.get(member_id)
            if member.credits < 1:
                return False
            member.record_sent(uuid.uuid4().hex, recipient_id, SUBJECT, BODY)
            try:
                self.save(member)
            except IntegrityError:
                continue  # another thread wrote first: decide again on fresh state
            return True
        raise RuntimeError(f"member {member_id}: too much contention")


# ------------------------------------------------------------------ SQLite, relaxed


class _NormalSyncPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL;")
        return connection


class RelaxedSQLiteFactory(SQLiteFactory):
    """The library's SQLite persistence with ``synchronous=NORMAL`` (no fsync per commit)."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        datastore: SQLiteDatastore = self.datastore
        pool = datastore.pool
        datastore.pool = _NormalSyncPool(db_name=pool.db_name, lock_timeout=pool.lock_timeout)


# ------------------------------------------------------------------ measuring


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    warmup: float
    duration: float
    members: int


FULL = Plan(rounds=3, warmup=1.0, duration=4.0, members=MEMBERS)
QUICK = Plan(rounds=1, warmup=0.1, duration=0.3, members=50)


@dataclass(frozen=True, slots=True)
class PeerRun:
    sends: int
    refused: int
    seconds: float
    latencies: Sequence[float]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.sends / self.seconds


@dataclass(frozen=True, slots=True)
class PeerFigure:
    """The median of several runs of one backend, setting and thread count."""

    backend: str
    setting: str
    threads: int
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    runs: Sequence[float]


def _env(backend: str, setting: str, dsn: str, sqlite_path: Path) -> dict[str, str]:
    env = {"AGGREGATE_CACHE_MAXSIZE": str(10 * MEMBERS), "IS_SNAPSHOTTING_ENABLED": "n"}
    if backend == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": str(info.get("dbname", "test")),
            "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(info.get("port", "5432")),
            "POSTGRES_USER": str(info.get("user", "postgres")),
            "POSTGRES_PASSWORD": str(info.get("password", "")),
            "POSTGRES_SCHEMA": SCHEMA,
            "POSTGRES_POOL_SIZE": "10",
        }
    else:
        module = "eventsourcing.sqlite" if setting == "durable" else f"{__name__}:RelaxedSQLiteFactory"
        env |= {"PERSISTENCE_MODULE": module, "SQLITE_DBNAME": str(sqlite_path)}
    return env


@contextmanager
def _pg_options(setting: str) -> Iterator[None]:
    # libpq reads PGOPTIONS for every new connection: the relaxed sessions commit without
    # waiting for the WAL flush, the durable ones as the server is configured.
    previous = os.environ.get("PGOPTIONS")
    if setting == "relaxed":
        os.environ["PGOPTIONS"] = "-c synchronous_commit=off"
    else:
        os.environ.pop("PGOPTIONS", None)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = previous


def _reset_postgres(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")


def _durability_check(app: InMailPeer, backend: str) -> str:
    """What the store does on commit, asked of the store itself."""
    recorder: Any = app.recorder
    datastore: Any = recorder.datastore
    if backend == "postgres":
        with datastore.get_connection() as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
            value = next(iter(row.values())) if isinstance(row, dict) else row[0]
            fsync = conn.execute("SHOW fsync").fetchone()
            fsync_value = next(iter(fsync.values())) if isinstance(fsync, dict) else fsync[0]
            return f"fsync={fsync_value}, synchronous_commit={value}"
    with datastore.get_connection(commit=False) as conn:
        sqlite_conn: sqlite3.Connection = conn._sqlite_conn
        journal = sqlite_conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = sqlite_conn.execute("PRAGMA synchronous").fetchone()[0]
        return f"journal_mode={journal}, synchronous={ {0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA'}[sync] }"


def run_threads(app: InMailPeer, members: Sequence[uuid.UUID], threads: int, plan: Plan) -> PeerRun:
    """``threads`` threads sending for random members; the sends started in the window."""
    window = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[float] = []
    refused = 0
    last_end = 0.0

    def worker(seed: int) -> None:
        nonlocal refused, last_end
        rng = random.Random(seed)
        while not stop.is_set():
            counted = window.is_set()
            member = members[rng.randrange(len(members))]
            began = time.perf_counter()
            ok = app.send(member, f"recipient-{rng.randrange(100_000)}")
            if counted:
                ended = time.perf_counter()
                with lock:
                    latencies.append(ended - began)
                    refused += not ok
                    last_end = ended

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(plan.warmup)
    cpu_before = time.process_time()
    window.set()
    started = time.perf_counter()
    time.sleep(plan.duration)
    window.clear()
    stop.set()
    for thread in pool:
        thread.join()
    cpu = time.process_time() - cpu_before
    sends = len(latencies) - refused
    return PeerRun(sends, refused, last_end - started, latencies, cpu)


def measure_backend(
    backend: str, setting: str, plan: Plan, dsn: str = DEFAULT_DSN, threads: Sequence[int] = THREADS
) -> tuple[list[PeerFigure], str]:
    """Every thread count for one backend and setting: figures and the store's commit setting."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp, _pg_options(setting):
        if backend == "postgres":
            _reset_postgres(dsn)
        app = InMailPeer(env=_env(backend, setting, dsn, Path(tmp) / "peer.db"))
        try:
            durability = _durability_check(app, backend)
            members = [app.register(1_000_000) for _ in range(plan.members)]
            runs: dict[int, list[PeerRun]] = {n: [] for n in threads}
            for round_ in range(plan.rounds):
                for n in threads:
                    log(f"peer {backend} {setting}: {n} thread(s), round {round_ + 1}")
                    runs[n].append(run_threads(app, members, n, plan))
        finally:
            app.close()
    figures = []
    for n, measured in runs.items():
        if any(run.refused for run in measured):
            raise RuntimeError("the peer refused sends: members ran out of credits")
        figures.append(
            PeerFigure(
                backend=backend,
                setting=setting,
                threads=n,
                rate=median([run.rate for run in measured]),
                p50_ms=median([percentile(sorted(run.latencies), 0.5) * 1000 for run in measured]),
                p99_ms=median([percentile(sorted(run.latencies), 0.99) * 1000 for run in measured]),
                cpu_us=median([run.cpu_seconds / max(run.sends, 1) * 1e6 for run in measured]),
                runs=[run.rate for run in measured],
            )
        )
    return figures, durability


def table(figures: Sequence[PeerFigure], durability: dict[str, str]) -> str:
    """One setting's figures; ratios to PostgreSQL with one thread."""
    base = next(f.rate for f in figures if f.backend == "postgres" and f.threads == 1)
    lines = [
        "| store | commit | threads | sends/s (median) | runs | p50 ms | p99 ms | CPU µs/send "
        "| ratio to PostgreSQL, 1 thread |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        runs = ", ".join(fmt(r) for r in f.runs)
        lines.append(
            f"| {f.backend} | {durability[f.backend]} | {f.threads} | {fmt(f.rate)} | {runs} "
            f"| {fmt(f.p50_ms)} | {fmt(f.p99_ms)} | {fmt(f.cpu_us)} | {ratio(f.rate, base)} |"
        )
    return "\n".join(lines) + "\n"


def run_all(plan: Plan, dsn: str) -> dict[str, tuple[list[PeerFigure], dict[str, str]]]:
    """Both settings, both backends."""
    results: dict[str, tuple[list[PeerFigure], dict[str, str]]] = {}
    for setting in SETTINGS:
        figures: list[PeerFigure] = []
        durability: dict[str, str] = {}
        for backend in BACKENDS:
            measured, durability[backend] = measure_backend(backend, setting, plan, dsn)
            figures += measured
        results[setting] = (figures, durability)
    return results


def report(results: dict[str, tuple[list[PeerFigure], dict[str, str]]], plan: Plan, command: str,
           dsn: str) -> str:
    """The markdown report."""
    parts = header(
        command,
        f"Each figure: median of {plan.rounds} run(s) of {plan.duration:g} s after {plan.warmup:g} s "
        f"warm-up; {plan.members:,} member aggregates, aggregate cache on, events carrying the InMail.",
        [
            f"eventsourcing {version('eventsourcing')}, PostgreSQL "
            f"{postgres_version(dsn)} on 127.0.0.1, SQLite {sqlite3.sqlite_version} (temporary file)"
        ],
    )
    for setting, (figures, durability) in results.items():
        parts += [f"### {TITLES[setting]}", "", table(figures, durability)]
    return "\n".join(parts)


def best(figures: Sequence[PeerFigure], backend: str) -> PeerFigure:
    """The fastest thread count of one backend."""
    return max((f for f in figures if f.backend == backend), key=lambda f: f.rate)




def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the report, optionally write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not data")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help=f"PostgreSQL (default {DEFAULT_DSN})")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    results = run_all(plan, args.dsn)
    command = "python -m bench.peer" + (" --quick" if args.quick else "")
    return publish_report(report(results, plan, command, args.dsn), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
