"""``inmail policy show`` and ``inmail policy check`` (the rules as a JSON document), and
``inmail whatif`` (the recorded history under another one)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inmail.cli.common import (
    CONTEXT_SETTINGS,
    CliError,
    connection_options,
    creds_for,
)
from inmail.cli.common import nats_url as nats_url_of
from inmail.cli.ops import operate


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


@click.command("whatif", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="the policy document to replay the history under (see `inmail policy show`)",
)
@click.option("--member", metavar="ID", help="report on this member only (the whole history is replayed)")
@click.option("--json", "as_json", is_flag=True, help='print {"members": [...], "total": {...}} as JSON')
@click.option("--no-progress", is_flag=True, help="no progress bar")
@connection_options()
def whatif_command(
    policy_file: Path,
    member: str | None,
    as_json: bool,
    no_progress: bool,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Replay the recorded history under another policy and report what would differ; writes nothing.

    Each recorded send, response, refresh and tier change is decided again by the service's own
    rules, in recorded order and at recorded times, under the policy in FILE. Reports, per member
    that differs and in total: balance, charged, refunded, forfeited, refused and stage.
    """
    from contracts.policy_document import check_document
    from inmail.ops.whatif import whatif

    rules, found = check_document(policy_file.read_bytes())
    if found or rules is None:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CliError(
            f"{policy_file} is not a sound policy: {found[0]}{more}; see `inmail policy check {policy_file}`"
        )
    login = creds_for(creds, data_dir, "operator")
    replay = whatif(
        nats_url_of(nats_url), rules, member, as_json, not no_progress, creds=login, label=str(policy_file)
    )
    return operate(replay, log_level)
