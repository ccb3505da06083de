"""docs/reference.md: the public interface, rendered from the code.

Subjects and streams, every command, query, operator request and event with its
fields (``msgspec.inspect``), the reply envelope, the error codes
(``contracts.replies.ERROR_MEANINGS``), policy v1 (``contracts.policy``) and the
command line (the parser's own ``--help``). Prose is written here only where the
code says nothing. Regenerate with ``python -m inmail.reference``; a test fails
when the page is stale. The same command writes the policy documents beside it
(``docs/policy.schema.json``, ``docs/policy-v1.json``: ``POLICY_DOCUMENTS``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

import msgspec

from contracts import events, notifications, replies, subjects
from contracts.commands import Command
from contracts.notifications import EmailNotification
from contracts.policy import POLICIES, encode_policy, policy_schema
from contracts.replies import ERROR_MEANINGS, CommandOk, ErrorCode, Failure, QueryOk
from inmail.generated import generate
from inmail.reference.rules import command_line, policy
from inmail.reference.structs import anchor, doc, fields_table, named_types, nested_structs
from inmail.routes import (
    ADMIN_ROUTES,
    ALERT_ROUTES,
    COMMAND_ROUTES,
    QUERY_ROUTES,
    ROUTES,
    WRITE_ROUTES,
    Route,
)
from inmail.streams import events_stream, members_stream, notifications_stream
from projections.queries import MIN_SEQ_TIMEOUT

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCUMENT = DOCS / "reference.md"

INTRO = """\
# InMail Broker reference

<!-- Generated from the code by `python -m inmail.reference`; edit the code, not this page. -->

Everything another service, subscriber or operator relies on: the subjects, the
shape of every request, reply and event, the error codes, the rules of policy v1
and the `inmail` command line. All bodies are UTF-8 JSON objects with snake_case
keys. `docs/asyncapi.json` says the same for machines; `docs/architecture.md`
says how it works inside."""

CONTENTS = [
    "Subjects and streams",
    "Replies",
    "Error codes",
    "Commands",
    "Queries",
    "Operator requests",
    "Mail service requests",
    "Events",
    "Email alerts",
    "Field types",
    "Rules: policy v1",
    "The command line",
]


def render() -> str:
    """The whole page."""
    sections = [
        INTRO,
        "\n".join(f"{n}. [{title}]({anchor(title)})" for n, title in enumerate(CONTENTS, 1)),
        _subjects(),
        _replies(),
        _error_codes(),
        _requests(
            "Commands",
            COMMAND_ROUTES,
            f"Requests that change something. {doc(Command)} A command decodes strictly: a "
            "missing, unknown or mistyped field is `INVALID_COMMAND` and nothing is written.",
        ),
        _requests(
            "Queries",
            QUERY_ROUTES,
            f"Answered from the read models. `min_seq` makes the answer wait (up to "
            f"{MIN_SEQ_TIMEOUT:g} s, then `UNAVAILABLE`) until the read model has applied that "
            "stream sequence, so a client reads its own writes; every answer carries `as_of_seq`.",
        ),
        _requests(
            "Operator requests",
            (*ADMIN_ROUTES, *WRITE_ROUTES),
            "Used by `inmail replay` (answered by every read-side process), `inmail events` "
            "(`Reveal`: opening sealed personal fields, never an email) and `inmail quarantine "
            "resolve` (answered by one command-side process: it writes an event).",
        ),
        _requests(
            "Mail service requests",
            ALERT_ROUTES,
            "The email alerts' `email`, `sender_name` and `subject` are stored sealed (section 11); "
            "the mail service (`notifier.creds`, the only role allowed) has the service open them.",
        ),
        _events(),
        _email_alerts(),
        _field_types(),
        policy(),
        command_line(),
    ]
    return "\n\n".join(sections).rstrip() + "\n"


def _subjects() -> str:
    rows = ["| Subject | Request | Queue group | Does |", "|---|---|---|---|"]
    rows += [
        f"| `{r.subject}` | [{r.name}]({anchor(r.name)}) | {f'`{r.queue}`' if r.queue else 'none'} "
        f"| {r.description} |"
        for r in ROUTES
    ]
    streams = ["| Stream | Subjects | Holds |", "|---|---|---|"]
    for make in (events_stream, members_stream, notifications_stream):
        spec = make()
        subject_list = ", ".join(f"`{subject}`" for subject in spec.subjects)
        streams.append(f"| `{spec.name}` | {subject_list} | {doc(make)} |")
    return "\n\n".join(
        [
            f"## {CONTENTS[0]}",
            doc(subjects),
            "Requests are core NATS request/reply: the reply goes to the request's reply "
            "subject, and a message without one is ignored (JetStream can be made to publish "
            "onto any subject, so such a message is never taken for a request). A queue group "
            "means that one of the service's processes answers each request.",
            "\n".join(rows),
            "\n".join(streams),
        ]
    )


def _replies() -> str:
    parts = [f"## {CONTENTS[1]}", doc(replies)]
    envelopes: list[type[msgspec.Struct]] = [CommandOk, QueryOk, Failure, *nested_structs(Failure)]
    for struct in envelopes:
        parts += [f"### {struct.__name__}", doc(struct), fields_table(struct)]
    parts.append(
        "A command sent again with the same `command_id` returns the original reply and writes "
        "nothing; refused commands write nothing and may be retried with the same id. When the "
        "outcome of a write cannot be known, the service does not reply at all: a retry with the "
        "same `command_id` answers from what was recorded."
    )
    return "\n\n".join(parts)


def _error_codes() -> str:
    rows = ["| Code | Meaning |", "|---|---|"]
    codes: tuple[ErrorCode, ...] = get_args(ErrorCode)
    rows += [f"| `{code}` | {ERROR_MEANINGS[code]} |" for code in codes]
    return "\n\n".join([f"## {CONTENTS[2]}", "\n".join(rows)])


def _requests(title: str, routes: Iterable[Route], about: str) -> str:
    parts = [f"## {title}", about]
    for route in routes:
        parts += [
            f"### {route.name}",
            f"`{route.subject}`: {doc(route.request)}",
            fields_table(route.request, tag=("optional", "When present, the command's name.")),
            f"The success reply's `data`: [{route.data.__name__}]({anchor(route.data.__name__)}).",
        ]
        parts += _struct_sections(route.request, shown=parts, itself=False)
        parts += _struct_sections(route.data, shown=parts)
    return "\n\n".join(parts)


def _struct_sections(struct: type[msgspec.Struct], shown: list[str], *, itself: bool = True) -> list[str]:
    parts: list[str] = []
    for each in (struct, *nested_structs(struct))[0 if itself else 1 :]:
        heading = f"#### {each.__name__}"
        if heading not in shown:
            parts += [heading, doc(each), fields_table(each)]
    return [part for part in parts if part]


def _events() -> str:
    parts = [f"## {CONTENTS[6]}", doc(events)]
    for event in events.EVENT_TYPES:
        parts += [
            f"### {event.__name__}",
            doc(event),
            fields_table(event, tag=("always", "The event's type.")),
        ]
        parts += _struct_sections(event, shown=parts, itself=False)
    return "\n\n".join(parts)


def _email_alerts() -> str:
    return "\n\n".join(
        [
            f"## {CONTENTS[7]}",
            doc(notifications),
            f"### {EmailNotification.__name__}",
            doc(EmailNotification),
            fields_table(EmailNotification),
        ]
    )


def _field_types() -> str:
    rows = ["| Type | Values |", "|---|---|"]
    rows += [f"| {name} | {meaning} |" for name, meaning in named_types()]
    return "\n\n".join([f"## {CONTENTS[8]}", "\n".join(rows)])


def policy_documents() -> dict[str, bytes]:
    """The policy's JSON Schema and every known policy as a document, by file name under docs/."""
    schema = msgspec.json.format(msgspec.json.encode(policy_schema()), indent=2) + b"\n"
    documents = {"policy.schema.json": schema}
    for version, rules in POLICIES.items():
        documents[f"policy-v{version}.json"] = encode_policy(rules)
    return documents


def main(argv: list[str] | None = None) -> int:
    """Write docs/reference.md (or the path given) and, beside it, the policy documents;
    ``--check``: write nothing, exit 1 when one is stale."""
    args = sys.argv[1:] if argv is None else argv
    return generate(args, DOCUMENT, _documents, "python -m inmail.reference")


def _documents(target: Path) -> dict[Path, bytes]:
    policies = {target.parent / name: document for name, document in policy_documents().items()}
    return {target: render().encode()} | policies
