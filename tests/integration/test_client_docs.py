"""The examples of docs/client.md run as written, against the service on a real nats-server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import subjects
from eventstore import connect
from inmail.natsserver import EmbeddedNatsServer
from tests.integration.service_env import running_service, settings_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"```python\n# example: (?P<name>\S+)\n(?P<code>.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    return {m["name"]: m["code"] for m in EXAMPLE.finditer((ROOT / "docs" / "client.md").read_text())}


@pytest.fixture
async def served(own_nats_server: EmbeddedNatsServer, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The examples written out, and the environment that points them at a running service."""
    for name, code in examples().items():
        (tmp_path / name).write_text(code)
    async with running_service(settings_for(own_nats_server.url, tmp_path, trust_client_time=False)):
        yield {**os.environ, "INMAIL_NATS": own_nats_server.url}


async def start(path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    # Asynchronously: the service answers on this test's event loop meanwhile.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-u", str(path), env=env, cwd=path.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run(path: Path, env: dict[str, str]) -> list[str]:
    process = await start(path, env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    assert process.stdout is not None
    async with asyncio.timeout(60):
        return [(await process.stdout.readline()).decode().strip() for _ in range(count)]


def seq_of(line: str) -> int:
    return int(line.split()[1].rstrip(":"))


async def acknowledged(url: str, durable: str, seq: int) -> None:
    """Wait until the consumer's acknowledgements reach ``seq`` (the example acks after printing)."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        for _ in range(200):
            if (await js.consumer_info(subjects.EVENTS_STREAM, durable)).ack_floor.stream_seq >= seq:
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"{durable} did not acknowledge seq {seq} within 10 s")
    finally:
        await nc.close()


async def stop(process: asyncio.subprocess.Process) -> None:
    process.kill()
    await process.wait()


def test_the_doc_shows_a_sending_service_a_subscriber_and_a_script() -> None:
    assert set(examples()) == {"sending_service.py", "billing_subscriber.py", "balance_script.py"}


async def test_the_examples_send_read_and_bill_each_charge_once(
    served: dict[str, str], tmp_path: Path
) -> None:
    first = await run(tmp_path / "sending_service.py", served)
    assert re.fullmatch(r"sent \S+: charged=True, 149 credits left", first[0])
    assert re.fullmatch(r"alice has 149 credits \(as of seq \d+\)", first[1])
    script = await run(tmp_path / "balance_script.py", served)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d from Alice: A role \(sent\)", script[0])

    billing = await start(tmp_path / "billing_subscriber.py", served)
    try:
        (charged,) = await lines(billing, 1)
        await acknowledged(served["INMAIL_NATS"], "billing", seq_of(charged))
    finally:
        await stop(billing)
    # Run again (registrations answered from their first replies), the subscriber restarted:
    # it bills the new send and nothing twice.
    again = await run(tmp_path / "sending_service.py", served)
    assert re.fullmatch(r"sent \S+: charged=True, 148 credits left", again[0])
    billing = await start(tmp_path / "billing_subscriber.py", served)
    try:
        (resumed,) = await lines(billing, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lines(billing, 1), 2)
    finally:
        await stop(billing)
    assert re.fullmatch(r"seq \d+: charge alice 1 credit", charged)
    assert re.fullmatch(r"seq \d+: charge alice 1 credit", resumed) and resumed != charged
