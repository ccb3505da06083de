"""The reference's sections on policy v1 (from ``contracts.policy``) and on the command line
(each command's own ``--help``, rendered by Click at a fixed width)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import click
import msgspec

from contracts import policy as policies
from contracts.policy import CURRENT_POLICY, Policy, TierRules
from inmail.cli import cli
from inmail.reference.structs import doc, field_docs

HELP_WIDTH = 100
"""Columns the help text is wrapped at, whatever the terminal that generates the page."""


def policy() -> str:
    """The tier table, every limit with its value, and how the rules apply."""
    p = CURRENT_POLICY
    tiers = [
        "| Tier | `tier` | Monthly allotment | Cap on banked credits | Charged InMail, Open Profile "
        "| SendBulkInMail | Scheduled sends | Automated follow-ups | Response-rate floor |",
        "|---|---|---:|---:|---|---|---|---|---|",
    ]
    tiers += [
        f"| {rules.name} | `{tier}` | {rules.monthly_allotment} | {rules.cap} | {_yes(rules.paid)} "
        f"| {_yes(rules.bulk)} | {_yes(rules.scheduled_sends)} | {_yes(rules.automated_follow_ups)} "
        f"| {_yes(rules.rate_floor)} |"
        for tier, rules in p.tiers.items()
    ]
    tier_docs = field_docs(TierRules)
    columns = [
        f"- **Monthly allotment**: {tier_docs['monthly_allotment']}",
        f"- **Cap**: {tier_docs['cap']}",
        f"- **Charged InMail, Open Profile**: {tier_docs['paid']}",
        f"- **SendBulkInMail**: {tier_docs['bulk']}",
        f"- **Scheduled sends**: {tier_docs['scheduled_sends']}",
        f"- **Automated follow-ups**: {tier_docs['automated_follow_ups']}",
        f"- **Response-rate floor**: {tier_docs['rate_floor']}",
    ]
    limits = ["| Rule | Value |", "|---|---|"]
    limits += [
        f"| {text} | {_value(value)} |"
        for text, value in _limits(p, Policy)
    ]
    return "\n\n".join(
        [
            f"## Rules: policy v{p.version}",
            doc(policies).split("\n\n", 1)[1],
            "### Tiers",
            "\n".join(tiers),
            "\n".join(columns),
            "### Limits",
            "\n".join(limits),
            "### How the rules apply",
            "\n".join(f"- {rule}" for rule in _how_rules_apply(p)),
        ]
    )


def _limits(rules: msgspec.Struct, struct: type[msgspec.Struct]) -> Iterator[tuple[str, object]]:
    """Each limit's sentence and value; a group of limits (scheduling, enforcement) row by row."""
    docs = field_docs(struct)
    for name in struct.__struct_fields__:
        value = getattr(rules, name)
        if name in ("version", "tiers"):
            continue
        if isinstance(value, msgspec.Struct):
            yield from _limits(value, type(value))
        else:
            yield docs[name], value


def _how_rules_apply(p: Policy) -> Iterator[str]:
    # The code says these only as code (services/domain): in words, here.
    cost = f"{p.inmail_cost} credit{'s' if p.inmail_cost != 1 else ''}"
    yield (
        f"A charged InMail costs {cost}. An InMail to a 1st-degree connection "
        '(`free_reason: "connection"`) or to an Open Profile member (`"open_profile"`) is free; '
        "free-tier members can send only free InMails."
    )
    yield (
        "Recipients who opted out of InMail cannot be sent one, except by their connections; "
        "blocked pairs cannot message each other either way. A block beats a connection, a "
        "connection beats an opt-out, an opt-out beats Open Profile."
    )
    yield (
        "On the first day of each calendar month (UTC) a member's tier's allotment is added; a "
        "balance above the cap is cut to the cap and the excess recorded as forfeited. The "
        "refresh for a month is recorded before any other credit movement of that member in "
        "that month, even when no refresh ran on the first day."
    )
    yield (
        "A tier change forfeits the old balance and grants the new tier's allotment: credits do not transfer."
    )
    yield (
        f"A charged InMail whose recipient replies or declines within {_value(p.refund_window)} "
        "of sending (inclusive) gets its credit back, exactly once, even if the recipient both "
        "declines and replies. Refunded credits count toward the cap at the next refresh. A "
        "later response is still recorded, with no refund."
    )
    yield (
        "A follow-up (`follow_up_of`) must name an earlier InMail from the same sender to the "
        "same recipient that has no response yet; an InMail gets at most one follow-up, charged "
        "like any InMail."
    )
    yield (
        f"SendBulkInMail sends one InMail to each of {p.bulk_min_recipients} to "
        f"{p.bulk_max_recipients} distinct recipients, all or nothing."
    )
    yield (
        "Subjects and bodies that are empty or only whitespace are refused; lengths count "
        "Unicode code points."
    )
    s, e = p.scheduling, p.enforcement
    yield (
        f"A scheduled send (`send_at`, up to {_value(s.horizon)} ahead) is decided and charged "
        "when accepted, and delivered at its time, exactly once; a block or an opt-out that "
        "arrived meanwhile cancels it and gives the credit back (ledger reason `cancelled`), as "
        "does `CancelScheduledInMail` before delivery."
    )
    yield (
        f"An automated follow-up goes out {s.follow_up_min_days} to {s.follow_up_max_days} days "
        f"(default {s.follow_up_default_days}) after its InMail was delivered, charged like any "
        "InMail, unless by then the recipient responded, a block or an opt-out forbids it, the "
        "credits do not cover it, or the sender cancelled it: then it is cancelled saying which."
    )
    yield (
        f"A period with at least {e.min_inmails} InMails (on tiers the floor applies to) is "
        f"assessed {_value(e.assess_after)} after it ends: a response rate under "
        f"{e.rate_floor:.0%} warns (stage `warned` for {_value(e.warning)}); the warning period "
        f"under the floor again suspends SendBulkInMail for {_value(e.suspension)} (stage "
        "`suspended`, ending by itself), otherwise the stage is `ok` again."
    )
    yield ("No query answer and no event outside the service's own members stream carries a member's email.")


def command_line() -> str:
    """``inmail --help`` and each subcommand's ``--help``, as the command line prints them."""
    # The group's own context settings (its help option names), at a width of our choosing.
    settings = {**cli.context_settings, "terminal_width": HELP_WIDTH, "max_content_width": HELP_WIDTH}
    root = click.Context(cli, info_name="inmail", **settings)
    parts = [
        "## The command line",
        "The `inmail` console script, as its own `--help` describes it. Every flag of `inmail serve` "
        "also reads its `INMAIL_*` environment variable (a flag on the command line wins).",
        "### inmail",
        _fenced(cli.get_help(root)),
    ]
    for name, command in sorted(cli.commands.items()):
        ctx = click.Context(command, info_name=name, parent=root)
        parts += [f"### inmail {name}", _fenced(command.get_help(ctx))]
    return "\n\n".join(parts)


def _fenced(text: str) -> str:
    return f"```text\n{text}\n```"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _value(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.days} days"
    return str(value)
