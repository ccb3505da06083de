"""``inmail serve`` as operators run it: configured from the environment, JSON logs, console traces."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from contracts import subjects
from tests.integration.service_env import client_at, new_id
from tests.serve_process import INMAIL, free_port, wait_until

TRACE_ID = "5b8efff798038103d269b633813fc60c"
TRACEPARENT = f"00-{TRACE_ID}-eee19b7ec3c1b174-01"


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a file, each of which must be one JSON object."""
    lines = path.read_text().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not a JSON line in {path.name}: {line!r}") from exc
    return parsed


async def send_traced(url: str, creds: Path) -> tuple[str, int]:
    """A SendInMail with ``TRACEPARENT``, once every projection applied it: its command id and seq."""
    async with client_at(url, creds) as client:
        sender = await client.register("recruiter")
        recipient = await client.register("premium_career")
        command_id = new_id("traced")
        body = {"command_id": command_id, "sender_id": sender, "recipient_id": recipient}
        reply = await client.nc.request(
            subjects.command("SendInMail"),
            msgspec.json.encode({**body, "subject": "A role", "body": "Interested?"}),
            timeout=10,
            headers={"traceparent": TRACEPARENT},
        )
        seq: int = msgspec.json.decode(reply.data)["seq"]
        for query, fields in (
            ("Inbox", {"member_id": recipient, "box": "received"}),
            ("CreditBalance", {"member_id": sender}),
            ("ResponseStats", {}),
        ):
            assert (await client.query(query, min_seq=seq, **fields))["ok"] is True
    return command_id, seq


def test_serve_from_the_environment_with_json_logs_and_console_traces(tmp_path: Path) -> None:
    nats_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "INMAIL_HTTP_PORT": str(http_port),
        "INMAIL_LOG_FORMAT": "json",
        "INMAIL_LOG_LEVEL": "debug",
        "INMAIL_TRUST_CLIENT_TIME": "true",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "inmail-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        serve = subprocess.Popen(
            [*INMAIL, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(nats_port)],
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "InMail broker ready" in out.read_text() or serve.poll() is not None, 60, "ready")
        assert serve.poll() is None, err.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=10) as ready:
            assert json.load(ready) == {"status": "ready"}
        client_creds = tmp_path / "data" / "creds" / "client.creds"
        command_id, seq = asyncio.run(send_traced(f"nats://127.0.0.1:{nats_port}", client_creds))
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(60)
    assert code == 0, err.read_text()

    logs = json_lines(err)
    assert all({"level", "time", "message"} <= set(line) for line in logs)
    answered = [line for line in logs if line.get("command_id") == command_id]
    assert any(line.get("seq") == seq and line.get("trace_id") == TRACE_ID for line in answered), answered

    printed = json_lines(out)
    assert "InMail broker ready" in printed[0]["message"]
    spans = [line for line in printed if line.get("context", {}).get("trace_id") == f"0x{TRACE_ID}"]
    names = {span["name"] for span in spans}
    assert {"SendInMail", "apply inbox", "apply credits", "apply response_stats"} <= names, names
    assert all(span["resource"]["attributes"]["service.name"] == "inmail-under-test" for span in spans)
