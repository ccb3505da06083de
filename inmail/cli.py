"""The ``inmail`` command line: run the service, and operate it through NATS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path

from eventstore import NatsUnreachable, connect
from inmail.cli_creds import CREDS_ENV, CredsError, add_creds_commands, add_creds_option, creds_for
from inmail.natsserver import EmbeddedNatsServer, NatsServerError, NatsServerSettings
from inmail.security.installation import Installation, SecurityError, refuse_insecure, secure

DEFAULT_NATS = "nats://127.0.0.1:4222"
MIN_SERVER = (2, 12)
"""Atomic batch publish arrived in nats-server 2.12 (batch direct get in 2.11)."""


class CliError(Exception):
    """An operator mistake or an unreachable dependency: printed as one line, exit 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inmail`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = asyncio.run(args.run(args))
    except (CliError, CredsError, SecurityError) as exc:
        print(f"inmail: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


ROLES = ("all", "commands", "read")
"""What one ``inmail serve`` process runs: the projections share the CPU with the
command handlers, so a busy deployment runs them in processes of their own."""


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and flag, with help text."""
    parser = argparse.ArgumentParser(
        prog="inmail",
        description="InMail Broker: paid direct messages, event-sourced on NATS JetStream.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--nats",
            metavar="URL",
            default=None,
            help=f"NATS server URL (default {DEFAULT_NATS}; for serve: start an embedded server)",
        )
        p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
        add_creds_option(p)
        return p

    serve = command("serve", "Run the service, its projections and queries.")
    serve.add_argument("--port", type=_port, default=4222, help="embedded nats-server port (default 4222)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="embedded server without authentication: anyone reaching the port may do anything "
        "(development only; says so on every start)",
    )
    serve.add_argument(
        "--store",
        metavar="URL",
        help="read-model store: sqlite:///path (default, in the data folder) or postgresql://...",
    )
    serve.add_argument(
        "--trust-client-time",
        action="store_true",
        help="honour commands' occurred_at (simulations, imports, tests)",
    )
    serve.add_argument(
        "--relaxed-fsync",
        action="store_true",
        help="embedded server: fsync on the default interval instead of every write (faster, may lose "
        "acknowledged writes on power loss)",
    )
    serve.add_argument(
        "--replicas", type=int, default=1, help="stream replicas when creating it (3 on a cluster)"
    )
    serve.add_argument(
        "--max-in-flight", type=int, default=1024, help="requests handled concurrently (default 1024)"
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default): commands, projections and queries in one process; commands: the "
        "command handlers and the monthly refresh only (run as many as needed, one queue group); "
        "read: the projections and the query and admin subjects only",
    )
    serve.set_defaults(run=_serve, log_level="info")

    replay = command("replay", "Rebuild read models from the stream, with a progress bar.")
    replay.add_argument("names", nargs="*", metavar="NAME", help="projections to rebuild (default: all)")
    replay.add_argument("--from-seq", type=_positive, default=1, help="rebuild from this stream sequence")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.set_defaults(run=_replay)

    status = command("status", "Stream size and sequence, each projection's position and lag.")
    status.set_defaults(run=_status)

    verify = command("verify", "Recompute balances and counts from the events; compare with the read models.")
    verify.set_defaults(run=_verify)

    events = command("events", "Print events as JSON lines.")
    events.add_argument("--member", metavar="ID", help="only events concerning this member")
    events.add_argument("--from-seq", type=_positive, default=1, help="start at this stream sequence")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.set_defaults(run=_events)

    simulate = command(
        "simulate",
        "Generate realistic traffic against a running service over NATS, spread over simulated "
        "months (the service must run with --trust-client-time).",
    )
    simulate.add_argument("--members", type=_at_least_two, default=200, help="members (default 200)")
    simulate.add_argument("--months", type=_positive, default=3, help="simulated months (default 3)")
    simulate.add_argument(
        "--start", type=_month, default=None, help="simulated start month YYYY-MM (default: a year ago)"
    )
    simulate.add_argument(
        "--seed", type=int, default=1, help="random seed: the same seed, the same traffic (default 1)"
    )
    simulate.add_argument(
        "--concurrency", type=_positive, default=64, help="requests in flight at most (default 64)"
    )
    simulate.add_argument(
        "--activity", type=_activity, default=1.0, help="multiplier on send volume (default 1.0)"
    )
    simulate.add_argument(
        "--id-prefix",
        type=_id_prefix,
        default=None,
        help="prefix of every id the run creates, so runs never collide (default: random)",
    )
    simulate.add_argument("--no-progress", action="store_true", help="no progress bar")
    simulate.set_defaults(run=_simulate)
    add_creds_commands(sub, DEFAULT_NATS)
    return parser


# serve -------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from inmail.app import InMailService, ServiceSettings, default_store_url

    log = logging.getLogger("inmail")
    embedded: EmbeddedNatsServer | None = None
    url = args.nats
    creds = creds_for(args, "service") if url is not None else None
    if url is None:
        installation = _embedded_security(args)
        if installation is not None:
            creds = installation.creds("service")
        embedded = EmbeddedNatsServer(
            NatsServerSettings(
                data_dir=args.data_dir / "nats",
                port=args.port,
                durable=not args.relaxed_fsync,
                security=installation,
            )
        )
        try:
            # Started from the main thread on purpose: the server dies with the thread that
            # started it (PR_SET_PDEATHSIG), and worker threads come and go.
            url = embedded.start()
        except NatsServerError as exc:
            raise CliError(str(exc)) from exc
        log.info("embedded nats-server on %s (data in %s)", url, args.data_dir / "nats")
    service = None
    try:
        await check_server(url, creds)
        args.data_dir.mkdir(parents=True, exist_ok=True)
        settings = ServiceSettings(
            nats_url=url,
            nats_creds=creds,
            store_url=args.store or default_store_url(args.data_dir),
            trust_client_time=args.trust_client_time,
            max_in_flight=args.max_in_flight,
            replicas=args.replicas,
            # With trusted client time the clients own the calendar (a simulation plays the
            # scheduler); a refresh stamped with the wall clock would move simulated members
            # to today and refuse every later simulated command as INVALID_TIME.
            scheduler=not args.trust_client_time,
            commands=args.role in ("all", "commands"),
            projections=args.role in ("all", "read"),
        )
        service = InMailService(settings)
        await service.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        serving = {"all": "commands and queries", "commands": "commands", "read": "queries"}[args.role]
        read_models = f", read models {settings.store_url}" if settings.projections else ""
        access = f", credentials in {creds.parent}" if embedded and creds else ""
        print(f"InMail broker ready ({serving}): NATS {url}{read_models}{access}", flush=True)
        if embedded and not creds:
            print(
                f"inmail: WARNING: --insecure: the embedded nats-server at {url} lets anyone who reaches "
                "it publish, read and delete anything; for development only",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
        log.info("stopping: finishing commands in flight")
    finally:
        if service is not None:
            await service.stop()
        if embedded is not None:
            embedded.stop()
    return 0


def _embedded_security(args: argparse.Namespace) -> Installation | None:
    """The data folder's keys for the embedded server (made on first start); None with ``--insecure``."""
    # Only a --creds on the command line is a mistake here; INMAIL_NATS_CREDS may be set for
    # the other commands of the same shell.
    if args.creds and args.creds != os.environ.get(CREDS_ENV):
        raise CliError(
            "--creds is for an external server (--nats): the embedded server's service uses "
            f"{args.data_dir / 'creds' / 'service.creds'}"
        )
    if args.insecure:
        refuse_insecure(args.data_dir)
        return None
    return secure(args.data_dir)


async def check_server(url: str, creds: Path | None = None) -> None:
    """Refuse, with one line, a NATS server that is unreachable or too old for the store."""
    try:
        nc = await connect(url, name="inmail-check", creds=creds)
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


# operator commands ----------------------------------------------------------


async def _replay(args: argparse.Namespace) -> int:
    from inmail.ops.replay import replay

    return await _operate(
        replay(
            _url(args),
            args.names or None,
            args.from_seq,
            not args.no_progress,
            creds=creds_for(args, "operator"),
        )
    )


async def _status(args: argparse.Namespace) -> int:
    from inmail.ops.status import status

    return await _operate(status(_url(args), creds=creds_for(args, "operator")))


async def _verify(args: argparse.Namespace) -> int:
    from inmail.ops.verify import verify

    return await _operate(verify(_url(args), creds=creds_for(args, "operator")))


async def _events(args: argparse.Namespace) -> int:
    from inmail.ops.events import events

    with contextlib.suppress(BrokenPipeError):
        return await _operate(
            events(_url(args), args.member, args.from_seq, args.follow, creds=creds_for(args, "operator"))
        )
    return 0


async def _operate(operation: Awaitable[int | None]) -> int:
    from inmail.ops.client import OperatorError

    try:
        result = await operation
    except (OperatorError, NatsUnreachable) as exc:
        raise CliError(str(exc)) from exc
    return int(result or 0)


# simulate -----------------------------------------------------------------------


async def _simulate(args: argparse.Namespace) -> int:
    from inmail.simulator import SimulationError, SimulationOptions, simulate

    options = SimulationOptions(
        members=args.members,
        months=args.months,
        start=args.start,
        seed=args.seed,
        concurrency=args.concurrency,
        activity=args.activity,
        id_prefix=args.id_prefix,
        progress=not args.no_progress,
    )
    try:
        summary = await simulate(_url(args), options, creds=creds_for(args, "client"))
    except SimulationError as exc:
        raise CliError(str(exc)) from exc
    print(summary.render())
    return 0


def _at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be 2 or more: {text}")
    return value


def _month(text: str) -> str:
    from inmail.simulator import MONTH_PATTERN

    if not MONTH_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"not a YYYY-MM month: {text}")
    return text


def _activity(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _id_prefix(text: str) -> str:
    from inmail.simulator import ID_PREFIX_PATTERN

    if not ID_PREFIX_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"must be 1-24 of A-Z a-z 0-9 _ -: {text}")
    return text


def _url(args: argparse.Namespace) -> str:
    return str(args.nats or DEFAULT_NATS)


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
