"""Decoding and encoding helpers the contract tests share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def refused(data: bytes, cls: type) -> str:
    """The message of the error decoding ``data`` as ``cls`` raises."""
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as caught:
        msgspec.json.decode(data, type=cls)
    return str(caught.value)
