"""``inmail creds``: issue, list and revoke the NATS users of a data folder; print a server's config."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from inmail.cli.common import CONTEXT_SETTINGS, CliError, data_dir_option, log_level_option, nats_option, run
from inmail.security.installation import Installation, SecurityError, load, secure
from inmail.security.installation import issue as issue_user
from inmail.security.revocation import revoke as revoke_user
from inmail.security.roles import ROLES

T = TypeVar("T")


@click.group("creds", context_settings=CONTEXT_SETTINGS)
def creds_group() -> None:
    """NATS credentials of a data folder: issue, list, revoke."""


@creds_group.command("issue", context_settings=CONTEXT_SETTINGS)
@click.option("--role", required=True, type=click.Choice(list(ROLES)), help="what the user may do")
@click.option("--name", required=True, help="the user's name (1-64 of A-Z a-z 0-9 _ -)")
@data_dir_option("data folder whose keys sign the user")
def issue_command(role: str, name: str, data_dir: Path) -> None:
    """Write DATA_DIR/creds/NAME.creds for a new user of a role; print its path."""
    print(_guarded(lambda: issue_user(_installed(data_dir), role, name)))


@creds_group.command("list", context_settings=CONTEXT_SETTINGS)
@data_dir_option("data folder whose users to list")
def list_command(data_dir: Path) -> None:
    """Every user issued from this data folder, with its role, revoked or not."""
    installation = _guarded(lambda: _installed(data_dir))
    print(f"account {installation.account} of operator {installation.operator}")
    for name, user in sorted(installation.users().items()):
        state = "revoked" if user.get("revoked") else "active"
        print(f"{name:<24} {user.get('role', '?'):<12} {state:<8} {user.get('public_key', '')}")


@creds_group.command("revoke", context_settings=CONTEXT_SETTINGS)
@click.option("--name", required=True, help="the user's name")
@nats_option("the running server to tell (default nats://127.0.0.1:4222)")
@data_dir_option("data folder whose keys signed the user")
@log_level_option("warning")
def revoke_command(name: str, nats_url: str | None, data_dir: Path, log_level: str) -> int:
    """Make the running server refuse a user from now on, open connections too."""
    url = nats_url or "nats://127.0.0.1:4222"

    async def revoked() -> int:
        try:
            await revoke_user(_installed(data_dir), name, url)
        except SecurityError as exc:
            raise CliError(str(exc)) from exc
        print(f"revoked {name}: {url} refuses it from now on")
        return 0

    return run(revoked(), log_level)


@creds_group.command("server-config", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--resolver-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the server's account store (default DATA_DIR/nats/accounts)",
)
@data_dir_option("data folder whose keys the server trusts")
def server_config_command(resolver_dir: Path | None, data_dir: Path) -> None:
    """Print the nats-server configuration that trusts this data folder's keys (for an external
    server; creates the keys and every role's credentials on first use)."""
    installation = _guarded(lambda: secure(data_dir))
    sys.stdout.write(installation.server_config(resolver_dir))
    print(f"credentials in {installation.creds_dir}", file=sys.stderr)


def _installed(data_dir: Path) -> Installation:
    if not (data_dir / "keys").is_dir():
        raise SecurityError(
            f"{data_dir / 'keys'} does not exist: start `inmail serve --data-dir {data_dir}` once"
        )
    return load(data_dir)


def _guarded(make: Callable[[], T]) -> T:
    try:
        return make()
    except SecurityError as exc:
        raise CliError(str(exc)) from exc
