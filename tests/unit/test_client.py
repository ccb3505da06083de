"""The client's own logic, on a scripted stand-in for the network: checks, retries, typed replies."""

from __future__ import annotations

import asyncio
import inspect
import re
from datetime import datetime
from typing import cast

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError

from contracts.commands import COMMANDS, SendInMail
from contracts.queries import QUERIES
from contracts.types import ID_PATTERN
from inmail.client import InMailClient, InMailError, NoAnswer
from inmail.client.generate import messages, render
from inmail.client.results import CreditBalanceResult, SendInMailResult
from inmail.client.transport import Requester

SENT = b'{"ok":true,"data":{"inmail_id":"1-x","charged":true,"free_reason":null,"credits_left":4},"seq":12}'
UNAVAILABLE = b'{"ok":false,"error":{"code":"UNAVAILABLE","message":"the store is away"}}'
NEVER = None
"""A request that is never answered."""


class Scripted(Requester):
    """Answers requests from a script, in order; records what was sent."""

    def __init__(self, *answers: bytes | BaseException | None) -> None:
        super().__init__(cast(NATS, None))
        self.answers = list(answers)
        self.sent: list[tuple[str, dict[str, object]]] = []

    async def request(self, subject: str, payload: bytes) -> bytes:
        self.sent.append((subject, msgspec.json.decode(payload)))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            await asyncio.sleep(3600)
        assert answer is not None
        return answer


def client_on(script: Scripted, deadline: float = 5.0) -> InMailClient:
    nc = cast(NATS, None)
    return InMailClient(nc, script, owns_connection=False, deadline=deadline, attempt_timeout=0.05)


def balance(as_of_seq: int) -> bytes:
    data = b'{"member_id":"alice","tier":"recruiter","balance":149,"monthly_allotment":150,"cap":600,'
    data += b'"granted":150,"spent":1,"refunded":0,"forfeited":0}'
    return b'{"ok":true,"data":' + data + b',"as_of_seq":%d}' % as_of_seq


async def send(client: InMailClient, **fields: object) -> SendInMailResult:
    values: dict[str, object] = {"recipient_id": "bob", "subject": "A role", "body": "Interested?"}
    values.update(fields)
    return await client.send_inmail("alice", **values)  # type: ignore[arg-type]


def test_the_generated_modules_are_current() -> None:
    for path, text in render().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m inmail.client.generate"


def test_every_command_and_query_has_a_method_taking_its_fields() -> None:
    listed = {message.kind: message for message in messages()}
    assert set(COMMANDS) | set(QUERIES) <= set(listed)
    for kind, message in listed.items():
        method = getattr(InMailClient, message.method)
        parameters = set(inspect.signature(method).parameters) - {"self"}
        assert parameters == {field.name for field in msgspec.structs.fields(kind)}
        result = InMailClient.results[kind]
        data_fields = [field.name for field in msgspec.structs.fields(message.data)]
        assert [field.name for field in msgspec.structs.fields(result)] == [*data_fields, message.position]


async def test_a_reply_is_the_contracts_data_with_its_seq() -> None:
    script = Scripted(SENT)

    sent = await send(client_on(script))

    assert sent == SendInMailResult(inmail_id="1-x", charged=True, free_reason=None, credits_left=4, seq=12)
    ((subject, body),) = script.sent
    assert subject == "inmail.cmd.SendInMail"
    assert re.match(ID_PATTERN, str(body["command_id"]))


async def test_command_ids_are_generated_fresh_for_each_command() -> None:
    script = Scripted(SENT, SENT)
    client = client_on(script)

    await send(client)
    await send(client)

    first, second = (body["command_id"] for _, body in script.sent)
    assert first != second


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"recipient_id": "bob smith"}, "INVALID_COMMAND"),
        ({"kind": "cold_call"}, "INVALID_COMMAND"),
        ({"subject": 7}, "INVALID_COMMAND"),
        ({"occurred_at": datetime(2026, 1, 1)}, "INVALID_COMMAND"),  # naive: which zone?
        ({"command_id": "x" * 65}, "INVALID_COMMAND"),
        ({"subject": " "}, "EMPTY_MESSAGE"),
        ({"subject": "s" * 201}, "SUBJECT_TOO_LONG"),
        ({"body": ""}, "EMPTY_MESSAGE"),
        ({"body": "é" * 1901}, "BODY_TOO_LONG"),
    ],
)
async def test_arguments_the_service_would_refuse_are_refused_before_sending(
    fields: dict[str, object], code: str
) -> None:
    script = Scripted()

    with pytest.raises(InMailError) as refused:
        await send(client_on(script), **fields)

    assert refused.value.code == code
    assert "regex" not in refused.value.message
    assert script.sent == []


async def test_a_struct_rule_and_a_bad_query_are_refused_before_sending() -> None:
    script = Scripted()
    client = client_on(script)

    with pytest.raises(InMailError, match="INVALID_COMMAND: a member cannot connect to themself"):
        await client.connect_members("alice", other_member_id="alice")
    with pytest.raises(InMailError) as refused:
        await client.inbox("alice", box="received", limit=0)

    assert refused.value.code == "INVALID_QUERY"
    assert script.sent == []


async def test_a_missing_or_unknown_keyword_is_a_type_error() -> None:
    client = client_on(Scripted())

    with pytest.raises(TypeError):
        await client.send_inmail("alice", recipient_id="bob", subject="A role")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        await send(client, colour="blue")


async def test_a_timeout_and_unavailable_are_retried_with_the_same_command_id() -> None:
    script = Scripted(NEVER, UNAVAILABLE, NoRespondersError(), SENT)
    client = client_on(script)

    sent = await send(client)

    assert sent.seq == 12
    assert len(script.sent) == 4
    assert len({body["command_id"] for _, body in script.sent}) == 1
    assert client.stats.retries == 3


async def test_a_refusal_is_final() -> None:
    refusal = b'{"ok":false,"error":{"code":"INSUFFICIENT_CREDITS","message":"no credits left"}}'
    script = Scripted(refusal)

    with pytest.raises(InMailError) as refused:
        await send(client_on(script))

    assert (refused.value.code, refused.value.message) == ("INSUFFICIENT_CREDITS", "no credits left")
    assert len(script.sent) == 1


async def test_an_error_code_newer_than_the_client_still_reaches_the_caller() -> None:
    script = Scripted(b'{"ok":false,"error":{"code":"IDEMPOTENCY_CONFLICT","message":"other payload"}}')

    with pytest.raises(InMailError) as refused:
        await send(client_on(script))

    assert refused.value.code == "IDEMPOTENCY_CONFLICT"


async def test_no_answer_by_the_deadline_says_the_retry_is_safe_and_names_the_command_id() -> None:
    script = Scripted(*[NoRespondersError() for _ in range(100)])

    with pytest.raises(NoAnswer) as unanswered:
        await send(client_on(script, deadline=0.3), command_id="c-42")

    assert unanswered.value.code == "UNAVAILABLE"
    assert "no InMail service answers on inmail.cmd.SendInMail" in unanswered.value.message
    assert "command_id c-42" in unanswered.value.message
    assert 2 <= len(script.sent) < 100


async def test_unavailable_until_the_deadline_is_the_services_own_refusal() -> None:
    script = Scripted(*[UNAVAILABLE for _ in range(100)])

    with pytest.raises(InMailError) as refused:
        await send(client_on(script, deadline=0.2))

    assert type(refused.value) is InMailError
    assert refused.value.message == "the store is away"


async def test_a_deadline_of_zero_makes_one_attempt() -> None:
    script = Scripted(NEVER)

    with pytest.raises(NoAnswer, match=r"no answer on inmail\.query\.Health within 0\.05s"):
        await client_on(script, deadline=0).health()

    assert len(script.sent) == 1


async def test_after_a_write_queries_wait_for_its_seq() -> None:
    script = Scripted(SENT, balance(12), balance(20))
    client = client_on(script)

    sent = await send(client)
    read = await client.after(sent).credit_balance("alice")
    later = await client.after(sent).credit_balance("alice", min_seq=20)

    assert read == CreditBalanceResult(
        member_id="alice", tier="recruiter", balance=149, monthly_allotment=150, cap=600,
        granted=150, spent=1, refunded=0, forfeited=0, as_of_seq=12,
    )  # fmt: skip
    assert later.as_of_seq == 20
    assert [body.get("min_seq") for _, body in script.sent[1:]] == [12, 20]


async def test_send_takes_a_command_built_by_the_caller_and_answers_its_typed_reply() -> None:
    script = Scripted(SENT)
    command = SendInMail(command_id="c-1", sender_id="alice", recipient_id="bob", subject="Hi", body="Yes?")

    sent = await client_on(script).send(command)

    assert isinstance(sent, SendInMailResult) and sent.inmail_id == "1-x"
    assert script.sent[0][1]["command_id"] == "c-1"
