"""The event store stands alone: it loads no other package of ours, and eventsourcing only on demand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUR_PACKAGES = frozenset(init.parent.name for init in ROOT.glob("*/__init__.py"))


def packages_loaded_by(module: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after importing ``module`` in a fresh interpreter."""
    shown = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules, sep='\\n')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name.split(".")[0] for name in shown.stdout.split()}


def test_importing_eventstore_loads_neither_eventsourcing_nor_another_package_of_ours() -> None:
    loaded = packages_loaded_by("eventstore")

    assert "eventsourcing" not in loaded
    assert loaded & OUR_PACKAGES == {"eventstore"}


def test_the_persistence_module_loads_no_package_of_ours_but_the_event_store() -> None:
    loaded = packages_loaded_by("eventstore.eventsourcing")

    assert "eventsourcing" in loaded
    assert loaded & OUR_PACKAGES == {"eventstore"}
