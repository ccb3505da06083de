"""The operator commands: ``inmail replay``, ``status``, ``verify`` and ``events``, over NATS alone."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from typing import Any

import click

from eventstore import NatsUnreachable
from inmail.cli.common import CliError, log_level_option, nats_option, nats_url, positive, run

FROM_SEQ = click.option(
    "--from-seq",
    type=int,
    default=1,
    show_default=True,
    callback=positive,
    help="start at this stream sequence",
)


def operate(operation: Coroutine[Any, Any, int | None], log_level: str) -> int:
    """Run an operator command; an operator error or an unreachable server is one line, exit 1."""
    from inmail.ops.client import OperatorError

    try:
        return run(operation, log_level)
    except (OperatorError, NatsUnreachable) as exc:
        raise CliError(str(exc)) from exc


@click.command("replay")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@FROM_SEQ
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option(
    "--new-stream",
    is_flag=True,
    help="confirm rebuilding from a stream other than the one the read models followed (deleted and "
    "created again, purged): what they hold of the old one is then gone",
)
@nats_option()
@log_level_option("warning")
def replay_command(
    names: tuple[str, ...],
    from_seq: int,
    no_progress: bool,
    new_stream: bool,
    nats_url: str | None,
    log_level: str,
) -> int:
    """Rebuild read models from the stream, with a progress bar.

    NAME: the projections to rebuild (default: all). --from-seq N ignores every event before N
    (after the stream was purged up to N).
    """
    from inmail.ops.replay import replay

    rebuild = replay(_url(nats_url), list(names) or None, from_seq, not no_progress, new_stream=new_stream)
    return operate(rebuild, log_level)


@click.command("status")
@nats_option()
@log_level_option("warning")
def status_command(nats_url: str | None, log_level: str) -> int:
    """Stream size and sequence, each projection's position and lag; exit 1 when not healthy."""
    from inmail.ops.status import status

    return operate(status(_url(nats_url)), log_level)


@click.command("verify")
@nats_option()
@log_level_option("warning")
def verify_command(nats_url: str | None, log_level: str) -> int:
    """Recompute balances and counts from the events and compare them with the read models.

    Exit 1 listing every difference.
    """
    from inmail.ops.verify import verify

    return operate(verify(_url(nats_url)), log_level)


@click.command("events")
@click.option("--member", metavar="ID", help="only events concerning this member")
@FROM_SEQ
@click.option("--follow", is_flag=True, help="keep printing new events")
@nats_option()
@log_level_option("warning")
def events_command(
    member: str | None, from_seq: int, follow: bool, nats_url: str | None, log_level: str
) -> int:
    """Print events as JSON lines: {"seq", "subject", "event"}."""
    from inmail.ops.events import events

    with contextlib.suppress(BrokenPipeError):
        return operate(events(_url(nats_url), member, from_seq, follow), log_level)
    return 0


def _url(given: str | None) -> str:
    return nats_url(given)
