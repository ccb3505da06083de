"""``inmail serve``: the service, its projections and queries, with an embedded nats-server
unless ``--nats`` names one."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import click

from eventstore import NatsUnreachable, connect
from inmail.cli.common import CONTEXT_SETTINGS, CliError, log_level_option, run
from inmail.natsserver import EmbeddedNatsServer, NatsServerError, NatsServerSettings
from inmail.supervisor import SupervisedNatsServer, until_stopped

MIN_SERVER = (2, 12)
"""Atomic batch publish arrived in nats-server 2.12 (batch direct get in 2.11)."""

ROLES = ("all", "commands", "read")
"""What one ``inmail serve`` process runs: the projections share the CPU with the
command handlers, so a busy deployment runs them in processes of their own."""

log = logging.getLogger("inmail")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The flags of ``inmail serve``, as given on the command line or in ``INMAIL_*``."""

    nats_url: str | None
    port: int
    data_dir: Path
    store: str | None
    trust_client_time: bool
    relaxed_fsync: bool
    replicas: int
    max_in_flight: int
    role: str


def _env(name: str) -> str:
    return f"INMAIL_{name}"


@click.command(
    "serve", short_help="Run the service, its projections and queries.", context_settings=CONTEXT_SETTINGS
)
@click.option(
    "--nats",
    "nats_url",
    metavar="URL",
    envvar=_env("NATS"),
    show_envvar=True,
    help="a running NATS server (2.12 or newer) to use instead of starting an embedded one",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=4222,
    show_default=True,
    envvar=_env("PORT"),
    show_envvar=True,
    help="the embedded nats-server's port",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("inmail-data"),
    show_default=True,
    envvar=_env("DATA_DIR"),
    show_envvar=True,
    help="data folder: the embedded server's JetStream store and the SQLite read models",
)
@click.option(
    "--store",
    metavar="URL",
    envvar=_env("STORE"),
    show_envvar=True,
    help="read-model store: sqlite:///path (default: readmodels.db in the data folder) or postgresql://...",
)
@click.option(
    "--trust-client-time",
    is_flag=True,
    envvar=_env("TRUST_CLIENT_TIME"),
    show_envvar=True,
    help="honour commands' occurred_at (simulations, imports, tests)",
)
@click.option(
    "--relaxed-fsync",
    is_flag=True,
    envvar=_env("RELAXED_FSYNC"),
    show_envvar=True,
    help="embedded server: fsync on the default interval instead of every write (faster; may lose "
    "acknowledged writes on power loss)",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    envvar=_env("REPLICAS"),
    show_envvar=True,
    help="replicas of the streams and buckets it creates (3 on a 3-node cluster)",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1),
    default=1024,
    show_default=True,
    envvar=_env("MAX_IN_FLIGHT"),
    show_envvar=True,
    help="requests handled concurrently",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    envvar=_env("ROLE"),
    show_envvar=True,
    help="all: commands, projections and queries in one process; commands: the command handlers and "
    "the monthly refresh only (run as many as needed, one queue group); read: the projections and "
    "the query and admin subjects only",
)
@log_level_option("info")
def serve_command(
    nats_url: str | None,
    port: int,
    data_dir: Path,
    store: str | None,
    trust_client_time: bool,
    relaxed_fsync: bool,
    replicas: int,
    max_in_flight: int,
    role: str,
    log_level: str,
) -> int:
    """Run the service, its projections and queries.

    Without --nats, starts an embedded nats-server (JetStream, every write fsynced) on --port,
    storing in --data-dir. Every flag can also be set by its INMAIL_* environment variable; a flag
    on the command line wins; a boolean variable is on when set to 1 or true.
    """
    options = ServeOptions(
        nats_url, port, data_dir, store, trust_client_time, relaxed_fsync, replicas, max_in_flight, role
    )
    return run(serve(options), log_level)


async def serve(options: ServeOptions) -> int:
    """Run until SIGTERM or SIGINT, then drain and stop."""
    from inmail.app import InMailService, ServiceSettings, default_store_url
    from inmail.datadir import DataDirInUse, DataDirLock

    projections = options.role in ("all", "read")
    lock: DataDirLock | None = None
    if options.nats_url is None or (projections and options.store is None):
        # The folder holds the embedded server's store or the read models: one owner at a time.
        try:
            lock = DataDirLock(options.data_dir).acquire()
        except DataDirInUse as exc:
            raise CliError(str(exc)) from exc
    embedded: SupervisedNatsServer | None = None
    service = None
    lost: str | None = None
    try:
        url = options.nats_url
        if url is None:
            assert lock is not None
            server_settings = NatsServerSettings(
                data_dir=options.data_dir / "nats", port=options.port, durable=not options.relaxed_fsync
            )
            # The server inherits the lock: the folder stays owned until the server is gone too.
            embedded = SupervisedNatsServer(EmbeddedNatsServer(server_settings, pass_fds=[lock.fd]))
            try:
                url = await embedded.start()
            except NatsServerError as exc:
                raise CliError(str(exc)) from exc
            log.info("embedded nats-server on %s (data in %s)", url, options.data_dir / "nats")
        await check_server(url)
        options.data_dir.mkdir(parents=True, exist_ok=True)
        settings = ServiceSettings(
            nats_url=url,
            store_url=options.store or default_store_url(options.data_dir),
            trust_client_time=options.trust_client_time,
            max_in_flight=options.max_in_flight,
            replicas=options.replicas,
            # With trusted client time the clients own the calendar (a simulation plays the
            # scheduler); a refresh stamped with the wall clock would move simulated members
            # to today and refuse every later simulated command as INVALID_TIME.
            scheduler=not options.trust_client_time,
            commands=options.role in ("all", "commands"),
            projections=projections,
        )
        service = InMailService(settings)
        await service.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        serving = {"all": "commands and queries", "commands": "commands", "read": "queries"}[options.role]
        read_models = f", read models {settings.store_url}" if settings.projections else ""
        print(f"InMail broker ready ({serving}): NATS {url}{read_models}", flush=True)
        lost = await until_stopped(stop, embedded)
        log.info("stopping: finishing commands in flight")
    finally:
        if service is not None:
            await service.stop()
        if embedded is not None:
            await embedded.stop()
        if lock is not None:
            lock.release()
    if lost is not None:
        raise CliError(lost)
    return 0


async def check_server(url: str) -> None:
    """Refuse, with one line, a NATS server that is unreachable or too old for the store."""
    try:
        nc = await connect(url, name="inmail-check")
    except NatsUnreachable as exc:
        raise CliError(str(exc)) from exc
    try:
        version = nc.connected_server_version
        if (version.major, version.minor) < MIN_SERVER:
            raise CliError(
                f"nats-server {version} at {url} is too old: atomic batch publish needs "
                f"{MIN_SERVER[0]}.{MIN_SERVER[1]} or newer"
            )
        try:
            await nc.jetstream().account_info()
        except Exception as exc:
            raise CliError(f"nats-server at {url} has no JetStream available: {exc}") from exc
    finally:
        await nc.close()
