"""Sending a run's commands to the service over NATS and settling the replies.

The simulator is a client of the contract and nothing more: it sends commands
through the client library (``inmail.client``) with trusted client time
(``occurred_at``), which retries an unanswered command with its command_id.
Before the first day a probe checks that the service honours that time.
Each phase's commands run concurrently (bounded), except that commands whose order
could change an outcome (one chain: one aggregate, or one InMail's responses) run one
after the other in planned order; with every draw made while planning, the same seed
gives the same outcomes however the replies interleave.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from nats.aio.client import Client as NATS
from tqdm import tqdm

from contracts.commands import Command, RefreshCredits, SendInMail
from contracts.types import month_of, next_month
from inmail.client import (
    InMailClient,
    InMailError,
    NoAnswer,
    RunDueResult,
    SendBulkInMailResult,
    SendInMailResult,
    Written,
)
from inmail.simulator.model import SimInMail, Step
from inmail.simulator.options import SimulationOptions
from inmail.simulator.planner import Planner
from inmail.simulator.summary import Summary, Tally


class SimulationError(Exception):
    """The simulation cannot run (or go on): unreachable NATS, no service, untrusted time."""


PROBE_DEADLINE = 5.0
"""Seconds the probe gives a service to answer: a missing one is reported soon."""

Outcome = Written | InMailError
"""A command's typed reply, or its refusal."""

_PROBE_AT: Final = datetime(2001, 1, 1, tzinfo=UTC)
"""Long before any server clock: the month after it has begun by every clock but this one."""


class Simulation:
    """One run: plans each day from the seed and sends it over one NATS connection."""

    def __init__(self, client: InMailClient, options: SimulationOptions) -> None:
        self.client = client
        self.options = options.validated()
        self.planner = Planner(self.options)
        self.prefix = self.planner.prefix
        self.tally = Tally(self.planner.days)
        self.tally.floor_sender = next(
            (m.member_id for m in self.planner.world.members if m.floor_sender), None
        )

    async def run(self) -> Summary:
        """Probe the service, then play every day; the summary of what happened."""
        tally = self.tally
        tally.first_seq = tally.last_seq = await self._probe()
        started = time.perf_counter()
        days = self.planner.days
        with tqdm(total=days, unit="day", desc="simulating", disable=not self.options.progress) as bar:
            for day in range(days):
                for phase in self.planner.plan_day(day):
                    await self._run_phase(phase)
                bar.update()
                bar.set_postfix(
                    commands=sum(tally.commands.values()), refused=sum(tally.refusals.values()), refresh=False
                )
        tally.retries = self.client.stats.retries
        return tally.summary(self.options, time.perf_counter() - started)

    async def _probe(self) -> int:
        """Check, writing nothing, that the service honours occurred_at; the stream sequence
        before the run.

        A refresh for a month that has not begun is refused (INVALID_TIME) whoever the
        member, and a refresh of a member no one registered is refused (UNKNOWN_MEMBER):
        neither writes anything. So the probe refreshes an unregistered member for the
        month after an instant long past, stamped at that instant: with trusted client
        time the month has not begun then; by the server's clock it has, and the member
        is unknown. (An earlier probe registered a member first: a refused run left it
        in the log.)
        """
        nonce = secrets.token_hex(4)
        refreshed = await self._probe_request(
            RefreshCredits(
                command_id=f"{self.prefix}-probe-{nonce}",
                occurred_at=_PROBE_AT,
                member_id=f"{self.prefix}-probe-{nonce}",
                month=next_month(month_of(_PROBE_AT)),
            )
        )
        code = refreshed.code if isinstance(refreshed, InMailError) else None
        if code == "UNKNOWN_MEMBER":
            raise SimulationError(
                "the InMail service ignores client time (occurred_at), so simulated months cannot "
                "be replayed: restart it with `inmail serve --trust-client-time`"
            )
        if code != "INVALID_TIME":
            raise SimulationError(f"the service answered the time probe unexpectedly: {refreshed}")
        probing = self.client.within(PROBE_DEADLINE)
        first = self.planner.world.members[0].member_id
        try:
            await probing.credit_balance(first)
        except InMailError:
            pass  # unknown (or no read side to ask): the prefix is new
        else:
            raise SimulationError(
                f"id prefix {self.prefix} was already used against this service; choose another "
                "--id-prefix (or leave it out for a random one)"
            )
        try:
            return (await probing.health()).stream_seq
        except InMailError:
            return 0

    async def _probe_request(self, command: Command) -> Outcome:
        try:
            return await self._request(command, self.client.within(PROBE_DEADLINE))
        except SimulationError as exc:
            nc = self.client.nc
            url = nc.connected_url.geturl() if nc.connected_url else "the NATS server"
            raise SimulationError(
                f"no InMail service answers at {url} ({exc}); start one with "
                "`inmail serve --trust-client-time`"
            ) from exc

    async def _run_phase(self, steps: list[Step]) -> None:
        """Run a phase: chains concurrently, the commands of each chain in planned order."""
        chains: dict[int, list[Step]] = {}
        for step in steps:
            chains.setdefault(step.chain, []).append(step)
        queue = deque(chains.values())

        async def worker() -> None:
            while queue:
                for step in queue.popleft():
                    self._settle(step, await self._request(step.command))

        await asyncio.gather(*(worker() for _ in range(min(self.options.concurrency, len(queue)))))

    async def _request(self, command: Command, client: InMailClient | None = None) -> Outcome:
        """Send one command; its reply or refusal. No answer by the client's deadline ends the run."""
        try:
            return await (client or self.client).send(command)
        except NoAnswer as exc:
            raise SimulationError(f"{type(command).__name__}: {exc.message}") from exc
        except InMailError as refusal:
            return refusal

    def _settle(self, step: Step, reply: Outcome) -> None:
        """Count a reply and let a success shape the future (its ids, its scheduled actions)."""
        self.tally.commands[type(step.command).__name__] += 1
        if isinstance(reply, InMailError):
            self.tally.refusals[reply.code] += 1
            return
        self.tally.last_seq = max(self.tally.last_seq, reply.seq)
        if isinstance(reply, SendInMailResult):
            assert isinstance(step.command, SendInMail)
            if step.command.send_at is not None:
                self.planner.world.schedule(step.inmails[0], reply.inmail_id)
                self.tally.scheduled += 1
            else:
                self._sent(step.inmails[0], reply.inmail_id)
            self.tally.automated_follow_ups += step.command.automated_follow_up is not None
        elif isinstance(reply, RunDueResult):
            self.tally.due.update(reply.outcomes)
            for inmail in step.delivers:
                self.tally.count_sent(inmail)
        elif isinstance(reply, SendBulkInMailResult):
            for inmail, inmail_id in zip(step.inmails, reply.inmail_ids, strict=True):
                self._sent(inmail, inmail_id)
        elif step.responds_to is not None:
            self.planner.world.responded(step.responds_to, declined=step.declines)
            self.tally.count_response(step.responds_to)

    def _sent(self, inmail: SimInMail, inmail_id: str) -> None:
        self.planner.world.sent(inmail, inmail_id)
        self.tally.count_sent(inmail)




# Entry points ------------------------------------------------------------------------


async def simulate(
    target: NATS | str, options: SimulationOptions | None = None, *, creds: Path | None = None
) -> Summary:
    """Run a simulation against the service behind ``target`` (a connection, or a URL and ``creds``)."""
    options = options or SimulationOptions()
    if isinstance(target, str):
        try:
            client = await InMailClient.connect(
                target, creds=creds, name="inmail-simulate", attempt_timeout=options.timeout
            )
        except InMailError as exc:
            raise SimulationError(exc.message) from exc
    else:
        client = await InMailClient.over(target, attempt_timeout=options.timeout)
    async with client:
        return await Simulation(client, options).run()
