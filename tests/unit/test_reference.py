"""docs/reference.md is generated from the code; this fails when it is stale."""

from typing import get_args

import pytest

from contracts.events import EVENT_TYPES
from contracts.policy import CURRENT_POLICY
from contracts.replies import ERROR_MEANINGS, REPLY_DATA, ErrorCode
from inmail import reference
from inmail.routes import ROUTES


def test_the_committed_reference_page_matches_the_code() -> None:
    committed = reference.DOCUMENT.read_text()
    assert committed == reference.render(), "docs/reference.md is stale: run python -m inmail.reference"


def test_the_page_does_not_depend_on_the_terminal_it_is_made_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert reference.render() == reference.DOCUMENT.read_text()


def test_every_error_code_has_its_sentence_in_the_order_of_the_codes() -> None:
    assert tuple(ERROR_MEANINGS) == get_args(ErrorCode)


def test_every_request_event_and_tier_has_its_place_on_the_page() -> None:
    page = reference.render()
    assert set(REPLY_DATA) == {route.request for route in ROUTES}
    for route in ROUTES:
        assert f"### {route.name}\n\n`{route.subject}`: " in page
        assert f"#### {route.data.__name__}\n" in page
    for event in EVENT_TYPES:
        assert f"### {event.__name__}\n" in page
    for tier, rules in CURRENT_POLICY.tiers.items():
        assert f"| {rules.name} | `{tier}` | {rules.monthly_allotment} | {rules.cap} |" in page
    assert "### inmail serve\n\n```text\nUsage: inmail serve" in page
