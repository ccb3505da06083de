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
    connection_options,
    creds_for,
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


def operate(operation: Coroutine[Any, Any, int | None], log_level: str) -> int:
    """Run an operator command; an operator error or an unreachable server is one line, exit 1."""
    from inmail.ops.client import OperatorError

    try:
        return run(operation, log_level)
    except (OperatorError, NatsUnreachable) as exc:
        raise CliError(str(exc)) from exc


@click.command("replay", context_settings=CONTEXT_SETTINGS)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@FROM_SEQ
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option(
    "--new-stream",
    is_flag=True,
    help="confirm rebuilding from a stream other than the one the read models followed (deleted and "
    "created again, purged): what they hold of the old one is then gone",
)
@connection_options()
def replay_command(
    names: tuple[str, ...],
    from_seq: int,
    no_progress: bool,
    new_stream: bool,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Rebuild read models from the stream, with a progress bar.

    NAME: the projections to rebuild (default: all). --from-seq N ignores every event before N
    (after the stream was purged up to N).
    """
    from inmail.ops.replay import replay

    login = creds_for(creds, data_dir, "operator")
    rebuild = replay(
        _url(nats_url), list(names) or None, from_seq, not no_progress, new_stream=new_stream, creds=login
    )
    return operate(rebuild, log_level)


@click.command("status", context_settings=CONTEXT_SETTINGS)
@connection_options()
def status_command(nats_url: str | None, creds: Path | None, data_dir: Path, log_level: str) -> int:
    """Stream size and sequence, each projection's position and lag; exit 1 when not healthy."""
    from inmail.ops.status import status

    return operate(status(_url(nats_url), creds=creds_for(creds, data_dir, "operator")), log_level)


@click.command("verify", context_settings=CONTEXT_SETTINGS)
@connection_options()
def verify_command(nats_url: str | None, creds: Path | None, data_dir: Path, log_level: str) -> int:
    """Recompute balances and counts from the events and compare them with the read models.

    Exit 1 listing every difference.
    """
    from inmail.ops.verify import verify

    return operate(verify(_url(nats_url), creds=creds_for(creds, data_dir, "operator")), log_level)


@click.command("events", context_settings=CONTEXT_SETTINGS)
@click.option("--member", metavar="ID", help="only events concerning this member")
@FROM_SEQ
@click.option("--follow", is_flag=True, help="keep printing new events")
@connection_options()
def events_command(
    member: str | None,
    from_seq: int,
    follow: bool,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Print events as JSON lines: {"seq", "subject", "event"}."""
    from inmail.ops.events import events

    with contextlib.suppress(BrokenPipeError):
        login = creds_for(creds, data_dir, "operator")
        return operate(events(_url(nats_url), member, from_seq, follow, creds=login), log_level)
    return 0


def _url(given: str | None) -> str:
    return nats_url(given)


@click.command("backup", context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True, help="no progress bar")
@connection_options()
def backup_command(
    file: Path, no_progress: bool, nats_url: str | None, creds: Path | None, data_dir: Path, log_level: str
) -> int:
    """Snapshot every stream and bucket of the service into FILE (JetStream's snapshot API).

    FILE must not exist; nothing is written unless the whole backup succeeds. Runs with the
    backup role's credentials by default (DATA_DIR/creds/backup.creds). The backup holds the
    members stream (emails): keep the file as safe as the data folder.
    """
    from inmail.ops.backup import backup

    login = creds_for(creds, data_dir, "backup")
    return operate(backup(_url(nats_url), file, not no_progress, creds=login), log_level)


@click.command("restore", context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--embedded",
    is_flag=True,
    help="restore into DATA_DIR's embedded server (started for it; serve must not run on the folder)",
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@connection_options()
def restore_command(
    file: Path,
    embedded: bool,
    no_progress: bool,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Restore a backup into a NATS server that has none of its streams (same sequences).

    Restoring creates streams: it needs an admin user of the server's account (DATA_DIR/creds/
    admin.creds by default: `inmail creds issue --role admin --name admin`). With --embedded the
    folder's own keys are used.
    """
    from inmail.ops.backup import restore, restore_into

    if not embedded:
        login = creds_for(creds, data_dir, "admin")
        return operate(restore(_url(nats_url), file, not no_progress, creds=login), log_level)
    if nats_url is not None:
        raise CliError("give --nats or --embedded, not both")
    return operate(restore_into(data_dir, file, not no_progress), log_level)
