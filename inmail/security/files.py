"""Private folders and files: 0700 and 0600 whatever the umask, written whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600, replacing it atomically (a rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    # Created 0600 from the start: the secret is never readable by others, not even briefly.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def read_json(path: Path) -> Any:
    """A JSON file's content; None when the file does not exist."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json(path: Path, value: object) -> Path:
    """``value`` as a private JSON file."""
    return write_private(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
