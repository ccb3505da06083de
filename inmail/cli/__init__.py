"""The ``inmail`` command line: run the service, and operate it through NATS.

Every flag has an ``INMAIL_*`` environment variable (shown in ``--help``); a flag given
on the command line wins. Errors are one line on stderr: exit 1 for a failure, 2 for a
bad argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from inmail.cli.cluster import cluster_group
from inmail.cli.common import CONTEXT_SETTINGS, report_usage_error
from inmail.cli.creds import creds_group
from inmail.cli.ops import (
    backup_command,
    events_command,
    replay_command,
    restore_command,
    status_command,
    verify_command,
)
from inmail.cli.policy import policy_group, whatif_command
from inmail.cli.quarantine import quarantine_command
from inmail.cli.serve import serve_command
from inmail.cli.simulate import simulate_command


@click.group(context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """InMail Broker: paid direct messages, event-sourced on NATS JetStream."""


for _command in (
    serve_command,
    replay_command,
    status_command,
    verify_command,
    events_command,
    backup_command,
    restore_command,
    quarantine_command,
    policy_group,
    whatif_command,
    simulate_command,
    creds_group,
    cluster_group,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inmail`` console script; the exit code."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="inmail", standalone_mode=False
        )
    except click.UsageError as exc:
        return report_usage_error(exc)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.Abort):
        return 130
    return int(result or 0)
