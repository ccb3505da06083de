"""One ``inmail serve`` for the security tests, secure by default as a newcomer would start it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from inmail.security.installation import issue, load
from tests.security.support import Installed, free_port


@pytest.fixture(scope="package")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    data_dir = tmp_path_factory.mktemp("secured")
    port = free_port()
    with (data_dir / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inmail.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--relaxed-fsync"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert "InMail broker ready" in ready, (data_dir / "serve.log").read_text()
        # For the tests' own set-up and inspection: every stream's state, extra streams.
        issue(load(data_dir), "admin", "admin")
        yield Installed(f"nats://127.0.0.1:{port}", data_dir)
    finally:
        process.terminate()
        process.wait(30)
