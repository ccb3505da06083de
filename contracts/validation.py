"""Decoding errors in words: the field and the rule it breaks, never msgspec's raw text.

msgspec says what it expected in its own terms ("Expected `str` matching regex
'^[A-Za-z0-9_-]{1,64}(?!\\n)$' - at `$.member_id`"). A client needs the field
and the rule: ``explain`` finds the field's type by walking the message's path
through the struct it was decoding, and words the rule from that type: its
description where it has one (ids, months, emails, times), else its bounds.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import inspect

from contracts.events import EVENT_TYPES

_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")
_NAMED = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<field>[^`]+)`$")
_GOT = re.compile(r"^Expected `[^`]+`, got `(?P<got>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_TAG = re.compile(r"^Invalid value (?P<value>.+)$")


def explain(exc: msgspec.ValidationError, kind: type) -> str:
    """What is wrong with a body decoded as ``kind``, in words."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    text, path = match["text"], match["path"] or ""
    named = _NAMED.match(text)
    if named:
        field = _join(path, named["field"])
        if named["what"] == "missing required":
            return f"{field} is required"
        return f"{field} is not a field of {kind.__name__}"
    where = path.lstrip(".") or "the body"
    if not text.startswith(("Expected ", "Invalid ")):
        # A rule of the struct itself (its __post_init__), already in words.
        return f"{where}: {text}" if path else text
    tag = _TAG.match(text)
    if path == ".type" and tag:
        return f"type must be {kind.__name__} on this subject (or left out), not {tag['value']}"
    target = _field_type(inspect.type_info(kind), path)
    if target is None:
        return f"{where} is not valid"
    rule = f"{where} must be {rule_of(target)}"
    enum = _ENUM.match(text)
    if enum:
        return f"{rule}, not {enum['value']}"
    got = _GOT.match(text)
    if got:
        return f"{rule}, not {_A.get(got['got'], got['got'])}"
    return rule


_EVENTS = {kind.__name__: kind for kind in EVENT_TYPES}


def explain_event(data: bytes, exc: Exception) -> str:
    """Why a stored event body cannot be read (``decode_event`` raised ``exc``), in words."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return "the body is not valid JSON"
    name = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        return "the body is not an event: it has no type"
    kind = _EVENTS.get(name)
    if kind is None:
        return f"unknown event type {name!r} (written by a newer version?)"
    if not isinstance(exc, msgspec.ValidationError):
        return f"{name}: {str(exc).strip() or type(exc).__name__}"
    return f"{name}: {explain(exc, kind)}"


def rule_of(kind: inspect.Type) -> str:
    """The rule a value of this type follows, in words ("a whole number from 1 to 200")."""
    described = _description(kind)
    if described:
        return described
    match kind:
        case inspect.Metadata():
            return rule_of(kind.type)
        case inspect.UnionType():
            choices = [rule_of(t) for t in kind.types if not isinstance(t, inspect.NoneType)]
            rule = " or ".join(choices)
            return f"{rule} (or null)" if len(choices) < len(kind.types) else rule
        case inspect.StrType():
            bounds = _bounds(kind.min_length, kind.max_length, "character")
            return f"text of {bounds}" if bounds else "text"
        case inspect.IntType():
            return f"a whole number{_range(kind.ge, kind.le)}"
        case inspect.BoolType():
            return "true or false"
        case inspect.LiteralType():
            return "one of " + ", ".join(str(value) for value in kind.values)
        case inspect.ListType():
            items = _bounds(kind.min_length, kind.max_length, "item") or "items"
            return f"a list of {items}, each {rule_of(kind.item_type)}"
        case inspect.DateTimeType():
            return "a time in RFC 3339 with its offset, e.g. 2026-11-29T13:00:00Z"
        case inspect.StructType():
            return "a JSON object"
    return f"a JSON {_A.get(type(kind).__name__.removesuffix('Type').lower(), 'value')}"


_A = {
    "str": "text",
    "int": "a number",
    "float": "a fractional number",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "an object",
}
"""msgspec's JSON type names as a client would say them."""


def _description(kind: inspect.Type) -> str | None:
    if isinstance(kind, inspect.Metadata) and kind.extra_json_schema:
        description = kind.extra_json_schema.get("description")
        if isinstance(description, str):
            return description
    return None


def _bounds(low: int | None, high: int | None, noun: str) -> str:
    if low is not None and high is not None:
        return f"{low} to {high} {noun}s"
    if high is not None:
        return f"at most {high} {noun}{'s' if high != 1 else ''}"
    if low is not None:
        return f"at least {low} {noun}{'s' if low != 1 else ''}"
    return ""


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f", {low} or more"
    if high is not None:
        return f", {high} or less"
    return ""


def _join(path: str, field: str) -> str:
    where = path.lstrip(".")
    return f"{where}.{field}" if where else field


def _field_type(kind: inspect.Type, path: str) -> inspect.Type | None:
    """The type at ``path`` (``.recipient_ids[1]``) inside ``kind``; None when the path ends nowhere."""
    current: Any = kind
    for step in _STEP.finditer(path):
        current = _unwrap(current)
        if step["field"] is not None:
            if not isinstance(current, inspect.StructType):
                return None
            fields = {field.encode_name: field.type for field in current.fields}
            if step["field"] not in fields:
                return None
            current = fields[step["field"]]
        elif isinstance(current, inspect.ListType):
            current = current.item_type
        else:
            return None
    return current  # type: ignore[no-any-return]


def _unwrap(kind: inspect.Type) -> inspect.Type:
    """The non-null part of an optional type, the type under its metadata."""
    if isinstance(kind, inspect.UnionType):
        others = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        if len(others) == 1:
            kind = others[0]
    if isinstance(kind, inspect.Metadata):
        kind = kind.type
    return kind
