"""The wire contract of queries: they decode strictly, with min_seq and their ranges."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts import queries
from contracts.queries import QUERIES
from tests.unit.wire import encode, refused

VALID_QUERIES: dict[type[queries.Query], dict[str, Any]] = {
    queries.Health: {},
    queries.Inbox: {"member_id": "alice", "box": "received"},
    queries.CreditBalance: {"member_id": "alice"},
    queries.CreditLedger: {"member_id": "alice"},
    queries.ResponseStats: {},
    queries.EnforcementStatus: {"member_id": "alice"},
}
ALL_QUERIES = pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.__name__)


def test_every_query_has_a_valid_example():
    assert set(VALID_QUERIES) == set(QUERIES)


@ALL_QUERIES
def test_a_valid_query_decodes_with_or_without_min_seq(query):
    assert msgspec.json.decode(encode(VALID_QUERIES[query]), type=query).min_seq is None
    assert msgspec.json.decode(encode(VALID_QUERIES[query] | {"min_seq": 7}), type=query).min_seq == 7


@ALL_QUERIES
@pytest.mark.parametrize("data", [b"nope", b"[]", b"3"])
def test_a_query_that_is_not_a_json_object_is_refused(query, data):
    refused(data, query)


@ALL_QUERIES
def test_a_query_with_an_unknown_field_is_refused(query):
    assert "`colour`" in refused(encode(VALID_QUERIES[query] | {"colour": "red"}), query)


@ALL_QUERIES
def test_a_negative_or_textual_min_seq_is_refused(query):
    for bad in (-1, "7", 1.5):
        assert "$.min_seq" in refused(encode(VALID_QUERIES[query] | {"min_seq": bad}), query)


@pytest.mark.parametrize(("query", "field"), [(queries.Inbox, "member_id"), (queries.Inbox, "box"),
                                              (queries.CreditBalance, "member_id"),
                                              (queries.CreditLedger, "member_id")])
def test_a_query_missing_a_required_field_is_refused(query, field):
    body = dict(VALID_QUERIES[query])
    del body[field]
    assert f"`{field}`" in refused(encode(body), query)


@pytest.mark.parametrize(
    ("query", "changes", "field"),
    [
        (queries.Inbox, {"box": "archive"}, "box"),
        (queries.Inbox, {"status": "unread"}, "status"),
        (queries.Inbox, {"limit": 0}, "limit"),
        (queries.Inbox, {"limit": 201}, "limit"),
        (queries.Inbox, {"member_id": "a.b"}, "member_id"),
        (queries.Inbox, {"before": ""}, "before"),
        (queries.CreditLedger, {"limit": 500}, "limit"),
        (queries.CreditBalance, {"at": "2026-01-05T09:00:00"}, "at"),
        (queries.ResponseStats, {"tier": "gold"}, "tier"),
        (queries.ResponseStats, {"kind": "spam"}, "kind"),
        (queries.ResponseStats, {"since": "last week"}, "since"),
        (queries.ResponseStats, {"sender_id": "a b"}, "sender_id"),
    ],
)
def test_a_query_field_out_of_its_range_is_refused_naming_it(query, changes, field):
    assert f"$.{field}" in refused(encode(VALID_QUERIES[query] | changes), query)


@pytest.mark.parametrize("limit", [1, 200])
def test_inbox_limits_of_1_to_200_are_accepted(limit):
    body = VALID_QUERIES[queries.Inbox] | {"limit": limit, "status": "replied", "before": "cursor-1"}
    assert msgspec.json.decode(encode(body), type=queries.Inbox).limit == limit


def test_inbox_limit_defaults_to_50():
    assert msgspec.json.decode(encode(VALID_QUERIES[queries.Inbox]), type=queries.Inbox).limit == 50
