"""The stream a store writes to: its configuration, and what an existing stream must match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nats.js import api as js_api


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The stream this store writes to; created once, checked on every start."""

    name: str
    subjects: tuple[str, ...]
    storage: Literal["file", "memory"] = "file"
    replicas: int = 1
    duplicate_window: float = 120.0
    """Seconds during which a repeated ``Nats-Msg-Id`` is dropped by the server."""

    def to_config(self) -> js_api.StreamConfig:
        return js_api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE if self.storage == "file" else js_api.StorageType.MEMORY,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            discard=js_api.DiscardPolicy.OLD,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
            max_msgs_per_subject=-1,
            allow_direct=True,
            allow_atomic=True,
            deny_delete=True,
        )


_CHECKED_FIELDS: tuple[tuple[str, str], ...] = (
    ("subjects", "subjects"),
    ("storage", "storage"),
    ("retention", "retention"),
    ("allow_atomic", "atomic batch publish"),
    ("allow_direct", "direct get"),
    ("max_msgs_per_subject", "messages per subject"),
    ("max_age", "maximum age"),
    ("discard", "discard policy"),
)


def incompatibilities(have: js_api.StreamConfig, want: js_api.StreamConfig) -> list[str]:
    """What in an existing stream's configuration ``have`` the store cannot use, one line each."""
    problems = []
    for attr, label in _CHECKED_FIELDS:
        current, wanted = getattr(have, attr), getattr(want, attr)
        if attr == "subjects":
            current, wanted = sorted(current or []), sorted(wanted or [])
        if attr == "max_age":
            current, wanted = current or 0, wanted or 0
        if current != wanted:
            problems.append(f"{label} is {_show(current)}, needs {_show(wanted)}")
    return problems


def _show(value: object) -> str:
    return str(getattr(value, "value", value))
