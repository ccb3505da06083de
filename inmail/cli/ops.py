"""The operator commands: ``inmail replay``, ``status``, ``verify`` and ``events``, over NATS alone."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from eventstore import NatsUnreachable
from inmail.cli.common import (
    CONTEXT_SETTINGS,
    CliError,
    log_level_option,
    nats_option,
    nats_url,
    positive,
    run,
)

FROM_SEQ = click.option(
    "--from-seq",
    type=int,
    default=1,
    show_default=True,
    callback=positive,
    help="start at this stream sequence",
)


def _operate(operation: Coroutine[Any, Any, int | None], log_level: str) -> int:
    from inmail.ops.client import OperatorError

    try:
        return run(operation, log_level)
    except (OperatorError, NatsUnreachable) as exc:
        raise CliError(str(exc)) from exc


@click.command("replay", context_settings=CONTEXT_SETTINGS)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@FROM_SEQ
@click.option("--no-progress", is_flag=True, help="no progress bar")
@nats_option()
@log_level_option("warning")
def replay_command(
    names: tuple[str, ...], from_seq: int, no_progress: bool, nats_url: str | None, log_level: str
) -> int:
    """Rebuild read models from the stream, with a progress bar.

    NAME: the projections to rebuild (default: all). --from-seq N ignores every event before N
    (after the stream was purged up to N).
    """
    from inmail.ops.replay import replay

    return _operate(replay(_url(nats_url), list(names) or None, from_seq, not no_progress), log_level)


@click.command("status", context_settings=CONTEXT_SETTINGS)
@nats_option()
@log_level_option("warning")
def status_command(nats_url: str | None, log_level: str) -> int:
    """Stream size and sequence, each projection's position and lag; exit 1 when not healthy."""
    from inmail.ops.status import status

    return _operate(status(_url(nats_url)), log_level)


@click.command("verify", context_settings=CONTEXT_SETTINGS)
@nats_option()
@log_level_option("warning")
def verify_command(nats_url: str | None, log_level: str) -> int:
    """Recompute balances and counts from the events and compare them with the read models.

    Exit 1 listing every difference.
    """
    from inmail.ops.verify import verify

    return _operate(verify(_url(nats_url)), log_level)


@click.command("events", context_settings=CONTEXT_SETTINGS)
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
        return _operate(events(_url(nats_url), member, from_seq, follow), log_level)
    return 0


def _url(given: str | None) -> str:
    return nats_url(given)


@click.command("backup", context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True, help="no progress bar")
@nats_option()
@log_level_option("warning")
def backup_command(file: Path, no_progress: bool, nats_url: str | None, log_level: str) -> int:
    """Snapshot every stream and bucket of the service into FILE (JetStream's snapshot API).

    FILE must not exist; nothing is written unless the whole backup succeeds.
    """
    from inmail.ops.backup import backup

    return _operate(backup(_url(nats_url), file, not no_progress), log_level)


@click.command("restore", context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="restore into this data folder's embedded server instead of --nats (serve must not run on it)",
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@nats_option()
@log_level_option("warning")
def restore_command(
    file: Path, data_dir: Path | None, no_progress: bool, nats_url: str | None, log_level: str
) -> int:
    """Restore a backup into a NATS server that has none of its streams (same sequences)."""
    from inmail.ops.backup import restore, restore_into

    if data_dir is None:
        return _operate(restore(_url(nats_url), file, not no_progress), log_level)
    if nats_url is not None:
        raise CliError("give --nats or --data-dir, not both")
    return _operate(restore_into(data_dir, file, not no_progress), log_level)
