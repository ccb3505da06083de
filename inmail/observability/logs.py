"""Logging for ``inmail serve``: human-readable lines by default, or one JSON object a line.

A JSON line has ``level``, ``time`` (RFC 3339, UTC), ``message`` and ``logger``, and
where they apply ``command_id`` (a line logged while a command is handled),
``seq`` (a line about a stream sequence: ``log.info(..., extra={"seq": n})``) and
``trace_id`` (a line logged inside a traced span), plus ``exception`` with the
traceback. The standard library's logging does the work; only the formatter is ours.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from opentelemetry.trace import get_current_span

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

current_command_id: ContextVar[str | None] = ContextVar("inmail_command_id", default=None)
"""The command being handled in this task; set by the command transport, read by every log line."""

_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object."""
        line: dict[str, Any] = {
            "level": record.levelname.lower(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "message": record.getMessage(),
            "logger": record.name,
        }
        command_id = getattr(record, "command_id", None) or current_command_id.get()
        if command_id is not None:
            line["command_id"] = command_id
        seq = getattr(record, "seq", None)
        if seq is not None:
            line["seq"] = seq
        context = get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send every log line to stderr, in the chosen format, at the chosen level and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


def json_line(level: str, message: str) -> str:
    """A line in the JSON log format for text written outside logging (the ready line, a fatal error)."""
    record = logging.LogRecord("inmail", getattr(logging, level.upper()), "", 0, message, None, None)
    return JsonFormatter().format(record)
