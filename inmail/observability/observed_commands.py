"""Commands as the transport hands them over, observed: counted, timed, traced, and named in logs.

Between the command subscription and the executor: it decodes, executes and
encodes as ``CommandExecutor.handle_raw`` does, and around that records the
contract's command metrics, continues the request's trace in a span of its own
(so the events appended inside carry it), and sets the ``command_id`` that log
lines written meanwhile show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from opentelemetry.trace import Status, StatusCode

from contracts import replies, subjects
from contracts.admin import SkipEvent
from contracts.commands import COMMANDS
from contracts.replies import CommandOk, Failure
from inmail.observability.logs import current_command_id
from inmail.observability.metrics import UNKNOWN_COMMAND, Metrics
from inmail.observability.tracing import Tracing
from services.executor import CommandExecutor, decode_command

log = logging.getLogger("inmail.commands")

_KNOWN = frozenset(command.__name__ for command in COMMANDS)


class ObservedCommands:
    """The executor behind the command subscription, with metrics, tracing and log context."""

    def __init__(self, executor: CommandExecutor, metrics: Metrics | None, tracing: Tracing | None) -> None:
        self.executor = executor
        self.metrics = metrics
        self.tracing = tracing

    async def handle(self, name: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
        """Decode and execute one command; the encoded reply envelope.

        Raises ``OutcomeUnknown`` as the executor does: such a command is not answered,
        so it is neither counted nor timed.
        """
        started = time.perf_counter()
        if self.tracing is None:
            reply = await self._execute(name, body)
            self._answered(name, reply, started)
        else:
            with self.tracing.command_span(name, subjects.command(name), headers) as span:
                reply = await self._execute(name, body)
                span.set_attribute("inmail.outcome", _outcome(reply))
                if isinstance(reply, Failure) and reply.error.code == "UNAVAILABLE":
                    span.set_status(Status(StatusCode.ERROR, reply.error.message))
                self._answered(name, reply, started)
        return replies.encode(reply)

    def _answered(self, name: str, reply: CommandOk | Failure, started: float) -> None:
        outcome = _outcome(reply)
        if self.metrics is not None:
            label = name if name in _KNOWN else UNKNOWN_COMMAND
            self.metrics.command_answered(label, outcome, time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):
            # Inside the command's span, so that the line carries its trace id.
            seq = reply.seq if isinstance(reply, CommandOk) else None
            log.debug("%s answered %s", name, outcome, extra={"seq": seq})

    async def _execute(self, name: str, body: bytes) -> CommandOk | Failure:
        decoded = decode_command(name, body)
        if isinstance(decoded, Failure):
            return decoded
        if isinstance(decoded, SkipEvent):
            # An operator's request on the same subscription: no command_id of its own.
            return await self.executor.skip(decoded)
        # Each command runs in a task of its own: the value ends with it.
        current_command_id.set(decoded.command_id)
        return await self.executor.execute(decoded)


def _outcome(reply: CommandOk | Failure) -> str:
    return "ok" if isinstance(reply, CommandOk) else reply.error.code
