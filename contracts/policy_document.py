"""A policy document checked the way an operator needs it: every problem, one line each.

``msgspec`` stops at the first wrong field and hides which tier it was in; an operator
fixing a document wants all of them at once, each with its path and the value found.
So the document is walked field by field against the Structs of ``contracts.policy``
(each field's own type decides what it accepts, so this adds no rule of its own), and
only a document whose every field has its type is decoded and given to ``problems``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_origin

import msgspec

from contracts.policy import Policy, PolicyProblem, decode_policy, problems


def check_document(document: bytes) -> tuple[Policy | None, list[PolicyProblem]]:
    """The policy a JSON document holds and what is wrong with it (no policy when it does not decode)."""
    try:
        raw = msgspec.json.decode(document)
    except msgspec.DecodeError as exc:
        return None, [PolicyProblem("(document)", "not JSON", str(exc))]
    found = list(_struct_problems(raw, Policy, ""))
    if found:
        return None, found
    rules = decode_policy(document)
    return rules, problems(rules)


def _struct_problems(raw: Any, struct: type[msgspec.Struct], path: str) -> list[PolicyProblem]:
    if not isinstance(raw, dict):
        return [PolicyProblem(path or "(document)", _shown(raw), f"must be an object ({struct.__name__})")]
    found: list[PolicyProblem] = []
    fields = {field.name: field for field in msgspec.structs.fields(struct)}
    for name in raw:
        if name not in fields:
            found.append(PolicyProblem(_join(path, name), _shown(raw[name]), "not a field of a policy"))
    for name, field in fields.items():
        where = _join(path, name)
        if name not in raw:
            if field.required:
                found.append(PolicyProblem(where, "missing", "required"))
            continue
        found += _value_problems(raw[name], field.type, where)
    return found


def _value_problems(value: Any, kind: Any, path: str) -> list[PolicyProblem]:
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return _struct_problems(value, kind, path)
    if get_origin(kind) is Mapping:
        keys, items = get_args(kind)
        if not isinstance(value, dict):
            return [PolicyProblem(path, _shown(value), "must be an object")]
        found: list[PolicyProblem] = []
        for key, item in value.items():
            if key not in get_args(keys):
                allowed = ", ".join(get_args(keys))
                found.append(PolicyProblem(_join(path, key), "present", f"not a tier (tiers: {allowed})"))
            else:
                found += _value_problems(item, items, _join(path, key))
        return found
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        return [PolicyProblem(path, _shown(value), str(exc))]
    return []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()
