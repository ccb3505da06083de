"""Hostile payloads on every command and query subject: the service keeps answering and writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any, get_args

import msgspec
import pytest

from contracts import subjects
from contracts.replies import ErrorCode
from tests.security.fuzz import EXISTING, TEMPLATES, payloads
from tests.security.support import Installed, connect_as, register, snapshot, verified

PER_SUBJECT = 600
"""17 subjects x 600: over 10,000 payloads."""

IN_FLIGHT = 32
ERROR_CODES = set(get_args(ErrorCode)) | {"INVALID_QUERY"}


class Envelope(msgspec.Struct):
    ok: bool
    error: dict[str, Any] | None = None


@pytest.mark.slow
async def test_every_subject_survives_hostile_payloads_and_nothing_is_written(installed: Installed) -> None:
    client = await connect_as(installed.url, installed.creds("client"))
    try:
        await client.request(*register(EXISTING))
        before = await snapshot(installed)
        gate = asyncio.Semaphore(IN_FLIGHT)
        accepted: list[tuple[str, bytes]] = []

        async def send(subject: str, body: bytes) -> None:
            async with gate:
                reply = await client.nc.request(subject, body, timeout=15)
            envelope = msgspec.json.decode(reply.data, type=Envelope)
            if envelope.ok:
                if subject.startswith(subjects.COMMAND_ROOT):
                    accepted.append((subject, body))
                return
            assert envelope.error is not None and envelope.error["code"] in ERROR_CODES, envelope
            # A handler that raised answers "internal error": a refusal must be decided.
            assert "internal error" not in envelope.error["message"], (subject, body[:200])

        sent = 0
        batch: list[tuple[str, bytes]] = []
        for item in payloads(seed=12, per_subject=PER_SUBJECT):
            batch.append(item)
            if len(batch) == 500:
                await asyncio.gather(*(send(s, b) for s, b in batch))
                sent += len(batch)
                batch = []
                # Still answering between the batches.
                assert (await client.request(subjects.query("Health"), {}))["ok"] is True
        await asyncio.gather(*(send(s, b) for s, b in batch))
        sent += len(batch)
    finally:
        await client.nc.close()
    assert sent == PER_SUBJECT * len(TEMPLATES) >= 10_000
    assert accepted == []
    assert await snapshot(installed) == before
    assert await verified(installed)
