"""``inmail creds``: issue, list and revoke NATS credentials; the ``--creds`` option every command takes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from inmail.security.installation import Installation, SecurityError, load, secure
from inmail.security.installation import issue as issue_user
from inmail.security.revocation import revoke as revoke_user
from inmail.security.roles import DEFAULT_ROLES, ROLES

CREDS_ENV = "INMAIL_NATS_CREDS"
DEFAULT_DATA_DIR = Path("inmail-data")


class CredsError(Exception):
    """A one-line message: missing keys, an unknown user, a file that is not there."""


def add_creds_option(parser: argparse.ArgumentParser) -> None:
    """``--creds FILE`` (environment ``INMAIL_NATS_CREDS``) and ``--data-dir`` where the defaults live."""
    parser.add_argument(
        "--creds",
        metavar="FILE",
        default=os.environ.get(CREDS_ENV) or None,
        help=f"NATS credentials file (environment {CREDS_ENV}; default: the role's file in DIR/creds)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="data folder (default ./inmail-data)"
    )


def creds_for(args: argparse.Namespace, role: str) -> Path | None:
    """``--creds`` when given, else ``DIR/creds/<role>.creds`` when it exists, else none."""
    if args.creds:
        given = Path(args.creds)
        if not given.is_file():
            raise CredsError(f"credentials file not found: {given}")
        return given
    default = Path(args.data_dir) / "creds" / f"{role}.creds"
    return default if default.is_file() else None


def add_creds_commands(sub: Any, default_nats: str) -> None:
    """The ``creds`` command group: ``issue``, ``list``, ``revoke``, ``server-config``."""
    group = sub.add_parser("creds", help="NATS credentials: issue, list, revoke", description=__doc__)
    commands = group.add_subparsers(dest="creds_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="data folder (default ./inmail-data)"
        )
        p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
        return p

    issue = command("issue", "Write DIR/creds/NAME.creds for a new user of a role; print its path.")
    issue.add_argument("--role", required=True, choices=list(ROLES), help="what the user may do")
    issue.add_argument("--name", required=True, help="the user's name (1-64 of A-Z a-z 0-9 _ -)")
    issue.set_defaults(run=_issue)

    listing = command("list", "Every user issued from this data folder, with its role, revoked or not.")
    listing.set_defaults(run=_list)

    revoke = command("revoke", "Make the running server refuse a user from now on, open connections too.")
    revoke.add_argument("--name", required=True, help="the user's name")
    revoke.add_argument(
        "--nats", metavar="URL", default=default_nats, help=f"the server (default {default_nats})"
    )
    revoke.set_defaults(run=_revoke)

    config = command(
        "server-config",
        "Print the nats-server configuration that trusts this data folder's keys (for an external server; "
        f"creates the keys and the {', '.join(DEFAULT_ROLES)} credentials on first use).",
    )
    config.add_argument(
        "--resolver-dir", type=Path, help="the server's account store (default DIR/nats/accounts)"
    )
    config.set_defaults(run=_server_config)


async def _issue(args: argparse.Namespace) -> int:
    path = issue_user(_installed(args.data_dir), args.role, args.name)
    print(path)
    return 0


async def _list(args: argparse.Namespace) -> int:
    installation = _installed(args.data_dir)
    print(f"account {installation.account} of operator {installation.operator}")
    for name, user in sorted(installation.users().items()):
        state = "revoked" if user.get("revoked") else "active"
        print(f"{name:<24} {user.get('role', '?'):<12} {state:<8} {user.get('public_key', '')}")
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    await revoke_user(_installed(args.data_dir), args.name, args.nats)
    print(f"revoked {args.name}: {args.nats} refuses it from now on")
    return 0


async def _server_config(args: argparse.Namespace) -> int:
    installation = secure(args.data_dir)
    sys.stdout.write(installation.server_config(args.resolver_dir))
    print(f"credentials in {installation.creds_dir}", file=sys.stderr)
    return 0


def _installed(data_dir: Path) -> Installation:
    if not (data_dir / "keys").is_dir():
        raise SecurityError(
            f"{data_dir / 'keys'} does not exist: start `inmail serve --data-dir {data_dir}` once"
        )
    return load(data_dir)
