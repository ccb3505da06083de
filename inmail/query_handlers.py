"""The query and operator subjects as FastStream handlers: each takes its decoded request and
returns the reply, which FastStream sends back to the requester.

Decoding is ours, per subject, strictly, with msgspec: FastDepends' msgspec
serializer converts leniently (``"5"`` would pass as an int) and cannot cast a
reply union of untagged Structs, so the broker runs with ``apply_types=False`` and
each subscriber gets a decoder for its Struct. Every malformed body is answered
``INVALID_QUERY`` naming the field; an empty body is an empty object (a bare
``Health`` request is natural).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec
from fast_depends.msgspec import MsgSpecSerializer
from faststream import AckPolicy
from faststream.middlewares import BaseMiddleware
from faststream.nats import NatsBroker, NatsMessage, NatsRouter
from faststream.nats.security import NatsCredentials
from faststream.nats.subscriber import CoreSubscriber

from contracts import replies
from contracts.admin import OpenAlert, Replay, Reveal, Revealed
from contracts.queries import (
    CreditBalance,
    CreditLedger,
    EnforcementStatus,
    Health,
    HealthData,
    Inbox,
    ResponseStats,
)
from contracts.replies import Failure, QueryOk
from contracts.validation import explain
from eventstore import seed_urls
from inmail.routes import ADMIN_ROUTES, ALERT_ROUTES, QUERY_ROUTES, Route, is_request

log = logging.getLogger("inmail.queries")

Reply = QueryOk | Failure

_BY_REQUEST = {route.request: route for route in (*ADMIN_ROUTES, *ALERT_ROUTES, *QUERY_ROUTES)}
LAST_SUBSCRIBED = _BY_REQUEST[Health].subject
"""Health is subscribed last: once it answers, the server knows every subscription before it."""


class ReadSide(Protocol):
    """The read models' answers (``projections.queries.QueryService``): all but ``reveal``."""

    async def health(self, query: Health) -> Reply: ...
    async def inbox(self, query: Inbox) -> Reply: ...
    async def credit_balance(self, query: CreditBalance) -> Reply: ...
    async def credit_ledger(self, query: CreditLedger) -> Reply: ...
    async def response_stats(self, query: ResponseStats) -> Reply: ...
    async def enforcement_status(self, query: EnforcementStatus) -> Reply: ...
    async def replay(self, request: Replay) -> Reply: ...


class QueryAnswers(ReadSide, Protocol):
    """What the handlers answer with: the read side's answers, and the sealed fields opened."""

    async def reveal(self, request: Reveal) -> Reply: ...
    async def open_alert(self, request: OpenAlert) -> Reply: ...


class Opener(Protocol):
    """Opens the sealed personal fields of an answer (``vault.Revealer``)."""

    async def builtins(self, value: Any) -> Any:
        """A JSON value with every token opened, ``"[erased]"`` where the key is gone."""
        ...

    async def text(self, value: str) -> str:
        """One stored string, opened when it is a token."""
        ...


class RevealingAnswers:
    """The read side's answers with personal fields opened: read models hold them sealed
    (section 11), so an erased member's fields read as ``"[erased]"`` from the moment their
    key is destroyed, with no read model to scrub."""

    def __init__(
        self, answers: ReadSide, opener: Opener, operator_opener: Opener, *, sealed_from: int = 1
    ) -> None:
        self.answers = answers
        self.sealed_from = sealed_from
        """The first events sequence written with sealing; the ones before it are clear text."""
        self.opener = opener
        self.operator_opener = operator_opener
        """Opens what events hold (never an email: they hold none, and a token of one stays shut)."""

    async def health(self, query: Health) -> Reply:
        reply = await self.answers.health(query)
        if self.sealed_from <= 1 or not isinstance(reply, QueryOk) or not isinstance(reply.data, HealthData):
            return reply
        data = msgspec.structs.replace(reply.data, clear_text_until_seq=self.sealed_from - 1)
        return QueryOk(data=data, as_of_seq=reply.as_of_seq)

    async def inbox(self, query: Inbox) -> Reply:
        reply = await self.answers.inbox(query)
        if isinstance(reply, Failure):
            return reply
        data = await self.opener.builtins(msgspec.to_builtins(reply.data))
        return QueryOk(data=data, as_of_seq=reply.as_of_seq)

    async def credit_balance(self, query: CreditBalance) -> Reply:
        return await self.answers.credit_balance(query)

    async def credit_ledger(self, query: CreditLedger) -> Reply:
        return await self.answers.credit_ledger(query)

    async def response_stats(self, query: ResponseStats) -> Reply:
        return await self.answers.response_stats(query)

    async def enforcement_status(self, query: EnforcementStatus) -> Reply:
        return await self.answers.enforcement_status(query)

    async def replay(self, request: Replay) -> Reply:
        return await self.answers.replay(request)

    async def reveal(self, request: Reveal) -> Reply:
        opened = [await self.operator_opener.text(value) for value in request.values]
        return QueryOk(data=Revealed(opened), as_of_seq=0)

    async def open_alert(self, request: OpenAlert) -> Reply:
        opened = [await self.opener.text(value) for value in request.values]
        return QueryOk(data=Revealed(opened), as_of_seq=0)


def build_query_broker(
    nats_url: str,
    answers: QueryAnswers,
    *,
    creds: Path | None = None,
    max_in_flight: int = 1024,
    graceful_timeout: float = 15.0,
) -> NatsBroker:
    """A FastStream broker answering every query and operator subject from ``answers``.

    It answers on its own connection, the one the requests arrive on: a secured server lets
    the service answer a request (``allow_responses``) only there.
    """
    broker = NatsBroker(
        seed_urls(nats_url),
        security=NatsCredentials(str(creds)) if creds else None,
        logger=None,
        name="inmail-queries",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        graceful_timeout=graceful_timeout,
        serializer=MsgSpecSerializer(),  # encodes the Structs the handlers return
        apply_types=False,
    )
    broker.include_router(query_router(answers, max_in_flight=max_in_flight))
    return broker


def query_router(answers: QueryAnswers, *, max_in_flight: int = 1024) -> NatsRouter:
    """A handler per query and operator subject, each calling the method of ``answers`` named after it."""
    router = NatsRouter(middlewares=(RequestsOnly,))

    def subscriber(request: type[msgspec.Struct]) -> CoreSubscriber:
        route = _BY_REQUEST[request]
        return router.subscriber(
            route.subject,
            queue=route.queue,
            decoder=_decoder(route),
            # Each request in a task of its own (a query may wait up to 5 s for min_seq).
            max_workers=max_in_flight,
            # Core NATS has nothing to acknowledge: no acknowledgement middleware per message.
            ack_policy=AckPolicy.MANUAL,
            title=route.name,
            description=route.description,
        )

    # Subscribed in this order on one connection; Health last (LAST_SUBSCRIBED).
    @subscriber(Replay)
    async def replay(request: Replay) -> Reply:
        return await answers.replay(request)

    @subscriber(Reveal)
    async def reveal(request: Reveal) -> Reply:
        return await answers.reveal(request)

    @subscriber(OpenAlert)
    async def open_alert(request: OpenAlert) -> Reply:
        return await answers.open_alert(request)

    @subscriber(Inbox)
    async def inbox(query: Inbox) -> Reply:
        return await answers.inbox(query)

    @subscriber(CreditBalance)
    async def credit_balance(query: CreditBalance) -> Reply:
        return await answers.credit_balance(query)

    @subscriber(CreditLedger)
    async def credit_ledger(query: CreditLedger) -> Reply:
        return await answers.credit_ledger(query)

    @subscriber(ResponseStats)
    async def response_stats(query: ResponseStats) -> Reply:
        return await answers.response_stats(query)

    @subscriber(EnforcementStatus)
    async def enforcement_status(query: EnforcementStatus) -> Reply:
        return await answers.enforcement_status(query)

    @subscriber(Health)
    async def health(query: Health) -> Reply:
        return await answers.health(query)

    return router


class MalformedRequest(Exception):
    """A body that is not the request's Struct; answered ``INVALID_QUERY`` with this message."""


def _decoder(route: Route) -> Callable[[NatsMessage], Awaitable[Any]]:
    decoder = msgspec.json.Decoder(route.request)
    what = f"{route.name} {'query' if route in QUERY_ROUTES else 'request'}"

    async def decode(message: NatsMessage) -> Any:
        try:
            return decoder.decode(message.body.strip() or b"{}")
        except msgspec.ValidationError as exc:
            # In words, never a raw pattern (contract 1.1).
            raise MalformedRequest(f"invalid {what}: {explain(exc, route.request)}") from None
        except msgspec.DecodeError:
            raise MalformedRequest(f"invalid {what}: the body is not JSON") from None

    return decode


class RequestsOnly(BaseMiddleware):
    """Answers requests only, and every one of them, never with an exception.

    A message without a reply subject is no request: JetStream can be made to publish
    onto any subject (a push consumer's deliver subject), so such messages are dropped,
    and nothing is published in answer (a reply to a delivery's ``$JS.ACK`` subject
    would acknowledge it).
    """

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        """Publish the answer to a request; nothing for a message that was none."""
        if not is_request(getattr(self.msg, "reply", None)):
            return None
        return await call_next(cmd)

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        """Drop what is not a request; turn failures into failure replies."""
        subject = msg.raw_message.subject
        if not is_request(msg.reply_to):
            log.debug("ignored a message that is no request on %s", subject)
            return None
        try:
            return await call_next(msg)
        except MalformedRequest as exc:
            return replies.failure("INVALID_QUERY", str(exc))
        except Exception:
            name = subject.rsplit(".", 1)[-1]
            log.exception("%s could not be answered", name)
            return replies.failure("UNAVAILABLE", f"{name} could not be answered; try again")
