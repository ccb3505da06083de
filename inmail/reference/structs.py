"""Markdown for msgspec Structs: a table of fields with types, defaults and constraints.

Everything comes from the Structs themselves: ``msgspec.inspect`` for types,
constraints and defaults, and each field's docstring (the string literal under
it in the class body) for its description.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from functools import cache
from typing import Any, get_args

import msgspec
import msgspec.inspect as mi

from contracts.events import FreeReason
from contracts.queries import InMailStatus, LedgerReason
from contracts.replies import ErrorCode
from contracts.types import Email, Id, InMailKind, Month, Tier, Time

NAMED: list[tuple[str, Any, str]] = [
    ("id", Id, "a string of 1-64 of `A-Z a-z 0-9 _ -` (ids become NATS subject tokens)"),
    ("time", Time, "an RFC 3339 string with a time zone, e.g. `2026-11-29T13:00:00Z`; answered in UTC"),
    ("month", Month, "a calendar month, `YYYY-MM`"),
    ("email", Email, "an address with one `@`, at most 320 characters"),
    ("Tier", Tier, ""),
    ("InMailKind", InMailKind, ""),
    ("InMailStatus", InMailStatus, ""),
    ("LedgerReason", LedgerReason, ""),
    ("FreeReason", FreeReason, ""),
    ("ErrorCode", ErrorCode, "one of the codes under [Error codes](#error-codes)"),
]
"""Types that many fields share: named once in the reference instead of spelled out each time."""


def anchor(name: str) -> str:
    """The markdown anchor of a heading that is exactly ``name``."""
    return "#" + re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")


def named_types() -> Iterator[tuple[str, str]]:
    """(name, meaning) of every shared type: a literal's values, or the words above."""
    for name, alias, words in NAMED:
        yield name, words or ", ".join(f"`{_json(value)}`" for value in get_args(alias))


def fields_table(struct: type[msgspec.Struct], *, tag: tuple[str, str] = ("", "")) -> str:
    """The table of a Struct's fields, the inherited ones first.

    ``tag`` is the default and the description of a tagged Struct's tag field (``type``).
    """
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    docs = field_docs(struct)
    by_name = {field.name: field for field in info.fields}
    rows = [
        (
            f"`{by_name[name].encode_name}`",
            describe(by_name[name].type),
            _default(by_name[name]),
            docs.get(name, ""),
        )
        for name in _declared_order(struct)
    ]
    if info.tag_field is not None:
        rows.insert(0, (f"`{info.tag_field}`", f"`{_json(info.tag)}`", *tag))
    described = any(row[3] for row in rows)
    header = ("Field", "Type", "Default", "Description")[: 4 if described else 3]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[: len(header)]) + " |" for row in rows]
    return "\n".join(lines)


def nested_structs(struct: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    """The Structs a Struct's fields hold (depth first, each once)."""
    seen: set[type] = set()

    def walk(t: mi.Type) -> Iterator[type[msgspec.Struct]]:
        if isinstance(t, mi.StructType) and t.cls not in seen:
            seen.add(t.cls)
            yield t.cls
            for field in t.fields:
                yield from walk(field.type)
        for child in _children(t):
            yield from walk(child)

    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        yield from walk(field.type)


def describe(t: mi.Type) -> str:
    """A field's type in words, with its constraints."""
    for name, alias, _ in NAMED:
        if t == mi.type_info(alias):
            return f"[{name}](#field-types)"
    match t:
        case mi.Metadata():
            return describe(t.type)
        case mi.UnionType():
            return " or ".join(describe(member) for member in t.types)
        case mi.NoneType():
            return "null"
        case mi.BoolType():
            return "boolean"
        case mi.IntType():
            return "integer" + _bounds(t.ge, t.le)
        case mi.FloatType():
            return "number"
        case mi.StrType():
            return "string" + _lengths(t.min_length, t.max_length, "characters")
        case mi.DateTimeType():
            return "time"
        case mi.LiteralType():
            return " or ".join(f"`{_json(value)}`" for value in t.values)
        case mi.ListType():
            return f"list of {describe(t.item_type)}" + _lengths(t.min_length, t.max_length, "items")
        case mi.DictType():
            return f"object of {describe(t.value_type)}"
        case mi.StructType():
            return f"[{t.cls.__name__}]({anchor(t.cls.__name__)})"
        case mi.AnyType():
            return "any"
    raise TypeError(f"no words for {t}")


def doc(thing: object) -> str:
    """A docstring as markdown: paragraphs kept, reStructuredText's double backticks made single."""
    text = (getattr(thing, "__doc__", None) or "").strip()
    return "\n\n".join(_paragraph(p) for p in text.split("\n\n")).replace("``", "`")


def _paragraph(text: str) -> str:
    """One line per paragraph, or per item of a ``- `` list."""
    lines: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("- ") or not lines:
            lines.append(line)
        else:
            lines[-1] += " " + line
    return "\n".join(lines)


def field_docs(struct: type) -> dict[str, str]:
    """Each field's docstring, from the class and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(struct.__mro__):
        if klass.__module__.startswith("contracts"):
            docs.update(_own_field_docs(klass))
    return docs


@cache
def _own_field_docs(klass: type) -> dict[str, str]:
    body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for field, doc in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            docs[field.target.id] = " ".join(doc.value.value.split()).replace("``", "`")
    return docs


def _declared_order(struct: type[msgspec.Struct]) -> list[str]:
    order: list[str] = []
    for klass in reversed(struct.__mro__):
        order += [name for name in vars(klass).get("__annotations__", {}) if name not in order]
    return [name for name in order if name in struct.__struct_fields__]


def _children(t: mi.Type) -> tuple[mi.Type, ...]:
    match t:
        case mi.Metadata():
            return (t.type,)
        case mi.UnionType():
            return t.types
        case mi.ListType():
            return (t.item_type,)
        case mi.DictType():
            return (t.value_type,)
    return ()


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    default = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    return f"`{_json(default)}`"


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _bounds(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" ≥ {low}"
    return f" ≤ {high}" if high is not None else ""


def _lengths(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f" of {low} to {high} {unit}"
    if low is not None:
        return f" of at least {low} {unit}"
    return f" of at most {high} {unit}" if high is not None else ""
