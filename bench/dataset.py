"""The replay benchmark's event stream: made once by the simulator, reused by every run.

``python -m bench.dataset [--dir DIR] [--members N] [--months M]`` starts a nats-server
(relaxed fsync: only the events matter, not how fast they were written) on a data
folder, the service in a process of its own (command side only, trusted client
time), and runs ``inmail.simulator.simulate`` against it. The defaults, 5,000
members over 12 simulated months, make about a million events (~20 minutes on a
2-core machine). The folder is marked with ``BENCH_DATASET.json`` (what it holds and
how it was made) and a ``README.txt``; a folder without a complete marker is never
reused. Benchmarks copy the folder's JetStream store before serving it, so the
dataset itself is never written to again.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats

from bench.common import creds, log, nats_server
from bench.service import ServiceProcess
from contracts import subjects
from inmail.natsserver import EmbeddedNatsServer
from inmail.simulator import SimulationOptions, simulate

DEFAULT_DIR = Path(__file__).resolve().parent / "results" / "replay-dataset-1m"
"""Under ``bench/results/`` (ignored by git)."""
MARKER = "BENCH_DATASET.json"
KIND = "inmail-broker benchmark dataset"


class Dataset(msgspec.Struct, frozen=True):
    """What ``BENCH_DATASET.json`` records."""

    kind: str
    members: int
    months: int
    start: str
    seed: int
    id_prefix: str
    events: int
    stream_bytes: int
    first_seq: int
    last_seq: int
    commands: int
    generated_at: str
    generation_seconds: float


def read_marker(directory: Path) -> Dataset | None:
    """The dataset in ``directory``, or None when there is no complete one."""
    try:
        dataset = msgspec.json.decode((directory / MARKER).read_bytes(), type=Dataset)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    # Datasets made before authentication (no keys beside the store) are made again.
    complete = (directory / "nats").is_dir() and (directory / "nats-auth").is_dir()
    return dataset if dataset.kind == KIND and complete else None


async def _stream_state(server: EmbeddedNatsServer) -> tuple[int, int, int, int]:
    nc = await nats.connect(server.url, user_credentials=creds(server, "admin"))
    try:
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
        state = info.state
        return state.messages, state.bytes, state.first_seq, state.last_seq
    finally:
        await nc.close()


async def _generate(directory: Path, members: int, months: int, seed: int, progress: bool) -> Dataset:
    prefix = f"bench{members}m{months}s{seed}"
    work = directory / "work"
    with nats_server(directory / "nats", "relaxed") as server:
        store_url = f"sqlite:///{work / 'unused-readmodels.db'}"
        work.mkdir(parents=True, exist_ok=True)
        # The members' data keys (section 11) are wrapped by the key in datakeys/: kept with the
        # dataset, so that a service on a copy of it opens them as the one that wrote them.
        service = ServiceProcess(
            server.url, store_url, trust_client_time=True, creds=server.creds("service"),
            key_dir=directory / "datakeys", log_path=work / "service.log",
        )  # fmt: skip
        with service:
            started = time.perf_counter()
            options = SimulationOptions(
                members=members, months=months, start="2024-01", seed=seed, id_prefix=prefix,
                progress=progress,
            )  # fmt: skip
            summary = await simulate(server.url, options, creds=server.creds("client"))
            elapsed = time.perf_counter() - started
        events, stream_bytes, first_seq, last_seq = await _stream_state(server)
    shutil.rmtree(work, ignore_errors=True)
    return Dataset(
        kind=KIND,
        members=members,
        months=months,
        start="2024-01",
        seed=seed,
        id_prefix=prefix,
        events=events,
        stream_bytes=stream_bytes,
        first_seq=first_seq,
        last_seq=last_seq,
        commands=sum(summary.commands.values()),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        generation_seconds=round(elapsed, 1),
    )


def ensure(
    directory: Path, *, members: int = 5_000, months: int = 12, seed: int = 1, progress: bool = False
) -> Dataset:
    """The dataset in ``directory``, generated first when there is none."""
    found = read_marker(directory)
    if found is not None:
        return found
    if directory.exists():
        log(f"{directory} holds no complete dataset: generating it again")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    log(f"generating {members:,} members x {months} months with the simulator into {directory}")
    dataset = asyncio.run(_generate(directory, members, months, seed, progress))
    (directory / "README.txt").write_text(
        "Benchmark dataset of InMail Broker (bench/dataset.py): a nats-server JetStream store\n"
        "holding the stream INMAIL_EVENTS made by the traffic simulator. Reused by\n"
        "bench/replay.py and bench/growth.py, which copy it before serving it.\n"
        f"See {MARKER}. Safe to delete; it is generated again when missing.\n"
    )
    (directory / MARKER).write_bytes(msgspec.json.format(msgspec.json.encode(dataset)))
    log(f"dataset ready: {dataset.events:,} events, {dataset.stream_bytes / 1e6:,.0f} MB")
    return dataset


@contextmanager
def served_copy(directory: Path, setting: str, scratch: Path | None = None) -> Iterator[EmbeddedNatsServer]:
    """A nats-server (with the given fsync setting) on a fresh copy of the dataset's store."""
    with tempfile.TemporaryDirectory(prefix=f"bench-dataset-{setting}-", dir=scratch) as tmp:
        copy = Path(tmp) / "nats"
        shutil.copytree(directory / "nats" / "jetstream", copy / "jetstream")
        # The streams belong to the dataset's account: its keys come along, and so does the
        # folder of the key that wraps the members' data keys (``key_dir``).
        shutil.copytree(directory / "nats-auth", Path(tmp) / "nats-auth")
        if (directory / "datakeys").exists():
            shutil.copytree(directory / "datakeys", Path(tmp) / "datakeys")
        with nats_server(copy, setting) as server:
            yield server


def key_dir(server: EmbeddedNatsServer) -> Path:
    """The key folder of the dataset copy ``server`` serves (``served_copy``)."""
    return server.settings.data_dir.parent / "datakeys"


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the dataset (when missing) and print its marker."""
    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"data folder (default {DEFAULT_DIR})")
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="the simulator's progress bar")
    args = parser.parse_args(argv)
    dataset = ensure(
        args.dir, members=args.members, months=args.months, seed=args.seed, progress=args.progress
    )
    print(msgspec.json.format(msgspec.json.encode(dataset)).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
