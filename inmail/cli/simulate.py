"""``inmail simulate``: realistic traffic against a running service, over NATS."""

from __future__ import annotations

import re
from pathlib import Path

import click

from inmail.cli.common import (
    CONTEXT_SETTINGS,
    CliError,
    connection_options,
    creds_for,
    nats_url,
    run,
)


def _matching(pattern: re.Pattern[str], rule: str) -> object:
    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not pattern.match(value):
            raise click.BadParameter(f"{rule}, not {value!r}")
        return value

    return check


def _id_prefix_rule() -> re.Pattern[str]:
    from inmail.simulator import ID_PREFIX_PATTERN

    return ID_PREFIX_PATTERN


def _month_rule() -> re.Pattern[str]:
    from inmail.simulator import MONTH_PATTERN

    return MONTH_PATTERN


@click.command("simulate", context_settings=CONTEXT_SETTINGS)
@click.option("--members", type=click.IntRange(2), default=200, show_default=True, help="members")
@click.option("--months", type=click.IntRange(1), default=3, show_default=True, help="simulated months")
@click.option(
    "--start",
    metavar="YYYY-MM",
    callback=_matching(_month_rule(), "a YYYY-MM month"),
    help="simulated start month (default: a year ago)",
)
@click.option("--seed", type=int, default=1, show_default=True, help="the same seed, the same traffic")
@click.option(
    "--concurrency", type=click.IntRange(1), default=64, show_default=True, help="requests in flight at most"
)
@click.option(
    "--activity", type=click.FloatRange(0), default=1.0, show_default=True, help="multiplier on send volume"
)
@click.option(
    "--id-prefix",
    callback=_matching(_id_prefix_rule(), "1-24 of A-Z a-z 0-9 _ -"),
    help="prefix of every id the run creates, so runs never collide (default: random)",
)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@connection_options()
def simulate_command(
    members: int,
    months: int,
    start: str | None,
    seed: int,
    concurrency: int,
    activity: float,
    id_prefix: str | None,
    no_progress: bool,
    nats_url: str | None,
    creds: Path | None,
    data_dir: Path,
    log_level: str,
) -> int:
    """Generate realistic traffic against a running service over NATS, spread over simulated
    months (the service must run with --trust-client-time)."""
    from inmail.simulator import SimulationError, SimulationOptions, simulate

    options = SimulationOptions(
        members=members,
        months=months,
        start=start,
        seed=seed,
        concurrency=concurrency,
        activity=activity,
        id_prefix=id_prefix,
        progress=not no_progress,
    )

    async def simulated() -> int:
        try:
            summary = await simulate(_url(nats_url), options, creds=creds_for(creds, data_dir, "client"))
        except SimulationError as exc:
            raise CliError(str(exc)) from exc
        print(summary.render())
        return 0

    return run(simulated(), log_level)


def _url(given: str | None) -> str:
    return nats_url(given)
