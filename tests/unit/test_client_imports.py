"""The client stands alone: a service that sends InMails installs no broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_loaded_by(module: str) -> set[str]:
    """The names in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    shown = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules, sep='\\n')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(shown.stdout.split())


def tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules} - set(sys.stdlib_module_names)


def test_the_client_loads_only_nats_msgspec_the_contracts_and_itself() -> None:
    loaded = modules_loaded_by("inmail.client")
    allowed = tops(modules_loaded_by("msgspec, nats.aio.client, nats.js.client"))

    assert tops(loaded) - allowed == {"contracts", "inmail"}
    ours = {name for name in loaded if name.split(".")[0] == "inmail"}
    assert {name for name in ours if not name.startswith("inmail.client")} == {"inmail"}
    assert "inmail.client.generate" not in ours
