"""``inmail quarantine``: list the events no one can read, and skip one on purpose."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from inmail.cli.common import (
    CONTEXT_SETTINGS,
    connection_options,
    creds_for,
    nats_url,
)
from inmail.cli.ops import operate


@click.group("quarantine", context_settings=CONTEXT_SETTINGS)
def quarantine_command() -> None:
    """Events on the stream that cannot be read: their members' commands wait until one is skipped."""


@quarantine_command.command("list", context_settings=CONTEXT_SETTINGS)
@connection_options()
def list_command(nats_url: str | None, creds: Path | None, data_dir: Path, log_level: str) -> int:
    """One line per quarantined event not resolved yet: its sequence, subject and error."""
    from inmail.ops.quarantine import quarantined

    return operate(quarantined(_url(nats_url), creds=creds_for(creds, data_dir, "operator")), log_level)


@quarantine_command.command("resolve", context_settings=CONTEXT_SETTINGS)
@click.argument("seq", type=click.IntRange(1))
@click.option(
    "--skip",
    is_flag=True,
    required=True,
    help="skip the event: its member is served again, and every replay passes over it the same way",
)
@click.option("--reason", default="skipped by an operator", show_default=True, help="recorded with the skip")
@click.option("--operator", metavar="NAME", help="who decides, recorded with the skip (default: your login)")
@connection_options()
def resolve_command(
    seq: int,
    skip: bool,
    reason: str,
    operator: str | None,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Resolve the quarantined event at SEQ; --skip (the only way so far) records that it is skipped."""
    from inmail.ops.quarantine import skip as skip_event

    del skip  # required: the flag says what the operator chose, there is no other way yet
    login = creds_for(creds, data_dir, "operator")
    return operate(skip_event(_url(nats_url), seq, reason, operator or _user(), creds=login), log_level)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _url(given: str | None) -> str:
    return nats_url(given)
