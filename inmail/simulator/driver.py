"""Sending a run's commands to the service over NATS and settling the replies.

The simulator is a client of the contract and nothing more: it sends commands on
``inmail.cmd.*`` with trusted client time (``occurred_at``) and reads the reply
envelopes. Before the first day a probe checks that the service honours that time.
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
from typing import Any, Final

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NATS
from tqdm import tqdm

from contracts import subjects
from contracts.commands import Command, RefreshCredits, RegisterMember, RunDue, SendBulkInMail, SendInMail
from contracts.replies import BulkSentData, RunDueData, SentData
from contracts.types import month_start
from inmail.simulator.model import SimInMail, Step
from inmail.simulator.options import SimulationOptions
from inmail.simulator.planner import Planner
from inmail.simulator.summary import Summary, Tally


class SimulationError(Exception):
    """The simulation cannot run (or go on): unreachable NATS, no service, untrusted time."""


class _Error(msgspec.Struct, frozen=True):
    code: str
    message: str = ""


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    data: msgspec.Raw = msgspec.Raw(b"null")
    seq: int = 0
    error: _Error | None = None


RETRIES: Final = 6


class Simulation:
    """One run: plans each day from the seed and sends it over one NATS connection."""

    def __init__(self, nc: NATS, options: SimulationOptions) -> None:
        self.nc = nc
        self.options = options.validated()
        self.planner = Planner(self.options)
        self.prefix = self.planner.prefix
        self.tally = Tally(self.planner.days)
        self.tally.floor_sender = next(
            (m.member_id for m in self.planner.world.members if m.floor_sender), None
        )
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Reply)

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
        return tally.summary(self.options, time.perf_counter() - started)

    async def _probe(self) -> int:
        """Check that the service honours occurred_at; the stream sequence before the run.

        A probe member registers a month before the start and is refreshed for the
        start month at its first instant. With trusted time that refresh is new and
        writes an event; with the server's clock the month is already refreshed (or
        has not begun), so nothing new is written.
        """
        probe = f"{self.prefix}-probe"
        # A fresh command id, so a prefix used before is refused (MEMBER_EXISTS) rather
        # than answered from the idempotency record of the earlier run.
        nonce = secrets.token_hex(4)
        registered_at = month_start(_previous_month(self.options.start or ""))
        registered = await self._probe_request(
            RegisterMember(
                command_id=f"{self.prefix}-probe-{nonce}-r",
                occurred_at=registered_at,
                member_id=probe,
                display_name="Simulation probe",
                email=f"{probe}@example.com",
                tier="premium_career",
            )
        )
        if not registered.ok:
            code = registered.error.code if registered.error else "?"
            if code == "MEMBER_EXISTS":
                raise SimulationError(
                    f"id prefix {self.prefix} was already used against this service; choose another "
                    "--id-prefix (or leave it out for a random one)"
                )
            raise SimulationError(f"the service refused the probe member: {_describe(registered)}")
        refreshed = await self._probe_request(
            RefreshCredits(
                command_id=f"{self.prefix}-probe-{nonce}-f",
                occurred_at=self.planner.start,
                member_id=probe,
                month=self.options.start or "",
            )
        )
        if refreshed.error is not None and refreshed.error.code != "INVALID_TIME":
            raise SimulationError(f"the service refused the probe's refresh: {_describe(refreshed)}")
        # INVALID_TIME: by the server's clock the simulated start month has not begun yet.
        if not refreshed.ok or refreshed.seq <= registered.seq:
            raise SimulationError(
                "the InMail service ignores client time (occurred_at), so simulated months cannot "
                "be replayed: restart it with `inmail serve --trust-client-time`"
            )
        return refreshed.seq

    async def _probe_request(self, command: Command) -> _Reply:
        try:
            return await self._request(command)
        except SimulationError as exc:
            url = self.nc.connected_url.geturl() if self.nc.connected_url else "the NATS server"
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

    async def _request(self, command: Command) -> _Reply:
        """Send one command; retried with the same command_id while the outcome is unknown."""
        name = type(command).__name__
        subject = subjects.command(name)
        payload = self._encoder.encode(command)
        failure: _Reply | None = None
        problem = ""
        for attempt in range(RETRIES):
            if attempt:
                self.tally.retries += 1
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            try:
                message = await self.nc.request(subject, payload, timeout=self.options.timeout)
            except nats.errors.NoRespondersError:
                problem = "no responders"
                continue
            except nats.errors.TimeoutError:
                # The command may or may not have been recorded; the same command_id settles it.
                problem = f"no reply within {self.options.timeout:g} s"
                continue
            except nats.errors.ConnectionClosedError as exc:
                raise SimulationError(f"the NATS connection closed: {exc}") from exc
            reply = self._decoder.decode(message.data)
            if reply.ok or reply.error is None or reply.error.code != "UNAVAILABLE":
                return reply
            failure = reply
        if failure is not None:
            return failure
        raise SimulationError(f"{name}: {problem} after {RETRIES} attempts")

    def _settle(self, step: Step, reply: _Reply) -> None:
        """Count a reply and let a success shape the future (its ids, its scheduled actions)."""
        self.tally.commands[type(step.command).__name__] += 1
        if not reply.ok:
            self.tally.refusals[reply.error.code if reply.error else "?"] += 1
            return
        self.tally.last_seq = max(self.tally.last_seq, reply.seq)
        if isinstance(step.command, SendInMail):
            single = msgspec.json.decode(reply.data, type=SentData)
            if step.command.send_at is not None:
                self.planner.world.schedule(step.inmails[0], single.inmail_id)
                self.tally.scheduled += 1
            else:
                self._sent(step.inmails[0], single.inmail_id)
            self.tally.automated_follow_ups += step.command.automated_follow_up is not None
        elif isinstance(step.command, RunDue):
            ran = msgspec.json.decode(reply.data, type=RunDueData)
            self.tally.due.update(ran.outcomes)
            for inmail in step.delivers:
                self.tally.count_sent(inmail)
        elif isinstance(step.command, SendBulkInMail):
            bulk = msgspec.json.decode(reply.data, type=BulkSentData)
            for inmail, inmail_id in zip(step.inmails, bulk.inmail_ids, strict=True):
                self._sent(inmail, inmail_id)
        elif step.responds_to is not None:
            self.planner.world.responded(step.responds_to, declined=step.declines)
            self.tally.count_response(step.responds_to)

    def _sent(self, inmail: SimInMail, inmail_id: str) -> None:
        self.planner.world.sent(inmail, inmail_id)
        self.tally.count_sent(inmail)


def _previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"


def _describe(reply: _Reply) -> str:
    return f"{reply.error.code}: {reply.error.message}" if reply.error else "no error given"


# Entry points ------------------------------------------------------------------------


async def simulate(target: NATS | str, options: SimulationOptions | None = None) -> Summary:
    """Run a simulation against the service behind ``target`` (a connection or a NATS URL)."""
    if isinstance(target, str):
        nc = await _connect(target)
        try:
            return await Simulation(nc, options or SimulationOptions()).run()
        finally:
            await nc.close()
    return await Simulation(target, options or SimulationOptions()).run()


async def _connect(url: str) -> NATS:
    async def quiet(*_: Any) -> None:
        # nats-py reports every connection hiccup on stderr; the requests' errors say enough.
        return None

    try:
        # Few attempts at first, so an unreachable URL fails in seconds, not minutes.
        nc = await nats.connect(
            url,
            name="inmail-simulate",
            connect_timeout=2,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.25,
            error_cb=quiet,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
            closed_cb=quiet,
        )
    except Exception as exc:
        raise SimulationError(f"cannot reach NATS at {url}: {exc or type(exc).__name__}") from exc
    nc.options["max_reconnect_attempts"] = 60
    return nc
