"""``inmail policy show`` and ``inmail policy check``: the rules as a JSON document."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inmail.cli.common import CONTEXT_SETTINGS


def _known_version(
    _ctx: click.Context | None, _param: click.Parameter | None, value: int | None
) -> int | None:
    from contracts.policy import POLICIES

    if value is not None and value not in POLICIES:
        known = ", ".join(str(version) for version in sorted(POLICIES))
        raise click.BadParameter(f"no policy version {value} (known: {known})")
    return value


@click.group("policy", context_settings=CONTEXT_SETTINGS)
def policy_group() -> None:
    """The rules (tiers, limits, refunds, the response-rate floor) as a versioned JSON document.

    docs/policy.md explains every field; docs/policy.schema.json is its JSON Schema.
    """


@policy_group.command("show", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--version",
    "version",
    type=int,
    callback=_known_version,
    metavar="V",
    help="the policy of this version (default: the current one, which decides new commands)",
)
def show_command(version: int | None) -> int:
    """Print a policy as JSON."""
    from contracts.policy import CURRENT_POLICY, encode_policy, policy

    rules = CURRENT_POLICY if version is None else policy(version)
    sys.stdout.write(encode_policy(rules).decode())
    return 0


@policy_group.command("check", context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def check_command(file: Path) -> int:
    """Validate a policy document: one line per problem (field, value, why) and exit 1, or "ok"."""
    from contracts.policy_document import check_document

    rules, found = check_document(file.read_bytes())
    for problem in found:
        click.echo(f"{file}: {problem}")
    if found or rules is None:
        return 1
    click.echo(f"{file}: ok (policy version {rules.version})")
    return 0
