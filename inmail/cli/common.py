"""What every ``inmail`` command shares: options with their environment variables,
one-line errors, and running the command's coroutine."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

DEFAULT_NATS = "nats://127.0.0.1:4222"
LOG_LEVELS = ("debug", "info", "warning", "error")

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Every command's: the same help options whichever way it is invoked (Click caches them)."""

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An operator mistake or an unreachable dependency: one line on stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"inmail: {self.format_message()}", err=True)


def nats_option(
    help_text: str = f"NATS server URL, or a cluster's seeds comma-separated (default {DEFAULT_NATS})",
) -> Callable[[F], F]:
    """``--nats URL``, also from ``INMAIL_NATS``."""
    return click.option(
        "--nats", "nats_url", metavar="URL", envvar="INMAIL_NATS", show_envvar=True, help=help_text
    )


def log_level_option(default: str) -> Callable[[F], F]:
    """``--log-level``, also from ``INMAIL_LOG_LEVEL``."""
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS),
        default=default,
        show_default=True,
        envvar="INMAIL_LOG_LEVEL",
        show_envvar=True,
        help="how much to log on stderr",
    )


CREDS_ENV = "INMAIL_NATS_CREDS"
DEFAULT_DATA_DIR = Path("inmail-data")


def creds_option() -> Callable[[F], F]:
    """``--creds FILE``, also from ``INMAIL_NATS_CREDS`` (or ``INMAIL_CREDS``)."""
    return click.option(
        "--creds",
        type=click.Path(dir_okay=False, path_type=Path),
        # Section 7 names INMAIL_NATS_CREDS; section 12's rule (INMAIL_<FLAG>) gives INMAIL_CREDS.
        envvar=[CREDS_ENV, "INMAIL_CREDS"],
        show_envvar=True,
        help="NATS credentials file (default: the role's file in DATA_DIR/creds, when it exists)",
    )


def data_dir_option(
    help_text: str = "data folder whose creds/ hold the default credentials",
) -> Callable[[F], F]:
    """``--data-dir DIR``, also from ``INMAIL_DATA_DIR``."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        envvar="INMAIL_DATA_DIR",
        show_envvar=True,
        help=help_text,
    )


def connection_options(log_level: str = "warning") -> Callable[[F], F]:
    """What every command that talks to a running service takes: ``--nats``, ``--creds``,
    ``--data-dir`` (whose ``creds/`` hold the default credentials) and ``--log-level``."""

    def decorate(command: F) -> F:
        for option in (log_level_option(log_level), data_dir_option(), creds_option(), nats_option()):
            command = option(command)
        return command

    return decorate


def creds_for(given: Path | None, data_dir: Path, role: str) -> Path | None:
    """``--creds`` when given, else ``DIR/creds/<role>.creds`` when it exists, else none."""
    if given is not None:
        if not given.is_file():
            raise CliError(f"credentials file not found: {given}")
        return given
    default = data_dir / "creds" / f"{role}.creds"
    return default if default.is_file() else None


def nats_url(given: str | None) -> str:
    """The NATS URL an operator command talks to."""
    return given or DEFAULT_NATS


def run(coroutine: Coroutine[Any, Any, int | None], log_level: str) -> int:
    """Run a command's coroutine with logging set up; its exit code."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(asyncio.run(coroutine) or 0)


def positive(_ctx: click.Context | None, _param: click.Parameter | None, value: int | None) -> int | None:
    """A click callback refusing numbers below 1."""
    if value is not None and value < 1:
        raise click.BadParameter(f"must be 1 or more, not {value}")
    return value


def report_usage_error(exc: click.UsageError) -> int:
    """A bad argument as one line on stderr (exit 2), pointing at ``--help``."""
    where = exc.ctx.command_path if exc.ctx is not None else "inmail"
    print(f"{where}: {exc.format_message()} (see `{where} --help`)", file=sys.stderr)
    return 2
