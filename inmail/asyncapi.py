"""The AsyncAPI document, generated from the code: FastStream's channels and operations
for every subscriber of the service, with payload schemas from the msgspec contracts.

FastStream cannot derive schemas from msgspec Structs (and our handlers take raw
bytes so that every decoding error becomes a reply), so the payloads are filled
in from ``msgspec.json.schema_components``. Regenerate with
``python -m inmail.asyncapi``; a test fails when docs/asyncapi.json is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
from faststream.specification import AsyncAPI

from contracts import subjects
from contracts.admin import ADMIN_OPERATIONS, WRITE_OPERATIONS, ReplayStarted
from contracts.commands import COMMANDS
from contracts.events import EVENT_TYPES, AnyEvent
from contracts.queries import QUERIES
from contracts.replies import CommandOk, Failure, QueryOk
from inmail.app import Dispatcher, ServiceSettings, build_broker

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
REF = "#/components/schemas/{name}"

DESCRIPTION = """\
InMail Broker: paid direct messages between members, event-sourced on NATS JetStream.

Commands are core NATS requests on `inmail.cmd.<Command>`; the reply is
`{"ok": true, "data": {...}, "seq": N}` or `{"ok": false, "error": {"code", "message"}}`.
The same `command_id` sent again returns the original reply and writes nothing; sent
again asking for something else (another payload, `occurred_at` aside) it answers
`IDEMPOTENCY_CONFLICT` and writes nothing. Every event carries the `fingerprint` of
the command that caused it, which is how that is told.
Queries are requests on `inmail.query.<Query>`; answers carry `as_of_seq`.
Events are stored in JetStream stream `INMAIL_EVENTS`, one subject per member
aggregate: `inmail.evt.member.<member_id>` holds the member's profile, credit
events and every InMail the member sent with its whole life. Read them through a
JetStream consumer (core subscribers also see messages of rejected batches).
Emails live only in stream `INMAIL_MEMBERS` (`inmail.members.<member_id>`).
An event that cannot be read is quarantined (`Health.quarantined`); its member's
commands answer `UNAVAILABLE` until an operator skips it (`inmail.admin.SkipEvent`,
recorded as an `EventSkipped` event on the member's subject).
"""


def document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document as JSON-ready data."""

    async def documentation_only(name: str, body: bytes) -> bytes:
        raise RuntimeError("this broker is built to be described, not run")

    settings = ServiceSettings(nats_url="nats://127.0.0.1:4222", store_url="")
    broker = build_broker(settings, Dispatcher(None, 1), documentation_only, documentation_only)
    spec = AsyncAPI(broker, title="InMail Broker", version="1.0.0", description=DESCRIPTION)
    doc: dict[str, Any] = spec.to_specification().to_jsonable()
    doc.pop("servers", None)
    for channel in doc.get("channels", {}).values():
        channel.pop("servers", None)

    payloads: list[Any] = [*COMMANDS, *QUERIES, *ADMIN_OPERATIONS, AnyEvent, *EVENT_TYPES]
    payloads += [CommandOk, QueryOk, Failure, ReplayStarted]
    (_, *_), schemas = msgspec.json.schema_components(payloads, ref_template=REF)
    components = doc.setdefault("components", {})
    components["schemas"] = {
        name: schema for name, schema in components.get("schemas", {}).items() if ":" not in name
    }
    components["schemas"].update(schemas)

    by_title = {t.__name__: t for t in (*COMMANDS, *QUERIES, *ADMIN_OPERATIONS)}
    for title, operation in doc.get("operations", {}).items():
        message_type = by_title[title]
        is_command = message_type in COMMANDS or message_type in WRITE_OPERATIONS
        _set_payload(doc, title, message_type.__name__)
        operation["reply"] = {
            "address": {"location": "$message.header#/reply_to"},
            "messages": [{"$ref": f"#/components/messages/{title}:Reply"}],
        }
        components.setdefault("messages", {})[f"{title}:Reply"] = {
            "title": f"{title}:Reply",
            "payload": {
                "oneOf": [
                    {"$ref": REF.format(name="CommandOk" if is_command else "QueryOk")},
                    {"$ref": REF.format(name="Failure")},
                ]
            },
        }
    _add_events_channel(doc)
    return doc


def _set_payload(doc: dict[str, Any], title: str, schema_name: str) -> None:
    for name, message in doc["components"].get("messages", {}).items():
        if name.startswith(f"{title}:") and not name.endswith(":Reply"):
            message["payload"] = {"$ref": REF.format(name=schema_name)}


def _add_events_channel(doc: dict[str, Any]) -> None:
    address = f"{subjects.MEMBER_EVENTS_PREFIX}{{member_id}}"
    doc["channels"]["MemberEvents"] = {
        "address": address,
        "description": (
            f"JetStream stream {subjects.EVENTS_STREAM}: one subject per member aggregate. "
            "Header Nats-Msg-Id equals the event's event_id. Events are never changed or deleted."
        ),
        "parameters": {"member_id": {"description": "The member whose aggregate records the event."}},
        "messages": {"Event": {"$ref": "#/components/messages/MemberEvents:Event"}},
    }
    doc["operations"]["MemberEvents"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/MemberEvents"},
        "messages": [{"$ref": "#/channels/MemberEvents/messages/Event"}],
    }
    doc["components"]["messages"]["MemberEvents:Event"] = {
        "title": "MemberEvents:Event",
        "payload": {"oneOf": [{"$ref": REF.format(name=t.__name__)} for t in EVENT_TYPES]},
    }


def render() -> str:
    """The document as committed: stable key order, two-space indent."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/asyncapi.json (or the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DOCUMENT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
