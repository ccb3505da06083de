"""Writing generated documents, or checking that the committed ones are current.

``python -m inmail.reference``, ``python -m inmail.asyncapi`` (and the client's
generator, in its own package) take ``[--check] [PATH]``: without ``--check`` they write;
with it they write nothing and exit 1 naming each stale document.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def generate(
    args: Sequence[str], default: Path, documents: Callable[[Path], dict[Path, bytes]], command: str
) -> int:
    """Parse ``[--check] [PATH]``, then write the documents for PATH (or check them)."""
    paths = [arg for arg in args if arg != "--check"]
    if unknown := [arg for arg in paths if arg.startswith("-")] or paths[1:]:
        print(f"unexpected {unknown[0]}: usage: {command} [--check] [PATH]", file=sys.stderr)
        return 2
    return write_or_check(documents(Path(paths[0]) if paths else default), "--check" in args, command)


def write_or_check(documents: dict[Path, bytes], check: bool, command: str) -> int:
    """Write each generated document, or with ``check`` say which are stale (exit 1)."""
    stale = 0
    for path, document in documents.items():
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(document)
            print(f"wrote {path}")
        elif not path.exists() or path.read_bytes() != document:
            print(f"{path} is stale: run {command}")
            stale = 1
    return stale
