"""docs/asyncapi.json is generated from the code; this fails when it is stale."""

from pathlib import Path

from inmail import asyncapi


def test_the_committed_asyncapi_document_matches_the_code() -> None:
    committed = asyncapi.DOCUMENT.read_text()
    assert committed == asyncapi.render(), "docs/asyncapi.json is stale: run python -m inmail.asyncapi"


def test_every_command_query_and_event_has_its_schema() -> None:
    doc = asyncapi.document()
    schemas = doc["components"]["schemas"]
    for name in ("SendInMail", "RecordReply", "Inbox", "ResponseStats", "InMailSent", "CreditRefunded"):
        assert schemas[name]["type"] == "object", name
    assert doc["channels"]["SendInMail"]["address"] == "inmail.cmd.SendInMail"
    assert doc["channels"]["MemberEvents"]["address"] == "inmail.evt.member.{member_id}"
    assert "email" not in schemas["MemberRegistered"]["properties"]


def test_check_names_a_stale_document_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    assert asyncapi.main(["--check", str(target)]) == 1 and not target.exists()
    assert asyncapi.main([str(target)]) == 0
    assert asyncapi.main(["--check", str(target)]) == 0
    assert asyncapi.main(["--chek"]) == 2
