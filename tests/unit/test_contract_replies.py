"""The reply envelope, the error codes, and policy v1 as the contract's tables."""

from __future__ import annotations

import typing
from datetime import timedelta

import msgspec

from contracts import replies
from contracts.policy import POLICY_V1
from contracts.types import Tier
from services.domain import errors

CONTRACT_ERROR_CODES = {
    "INVALID_COMMAND", "INVALID_TIME", "SUBJECT_TOO_LONG", "BODY_TOO_LONG", "EMPTY_MESSAGE", "MEMBER_EXISTS",
    "UNKNOWN_MEMBER", "UNKNOWN_INMAIL", "SELF_MESSAGE", "TIER_NOT_ALLOWED", "RECIPIENT_OPTED_OUT", "BLOCKED",
    "INSUFFICIENT_CREDITS", "NOT_RECIPIENT", "ALREADY_RESPONDED", "INVALID_FOLLOW_UP", "IDEMPOTENCY_CONFLICT",
    "UNAVAILABLE",
    # 1.1, section 8
    "ALREADY_SENT", "BULK_SUSPENDED",
    # 1.1, section 11 (and the refusal of an erasure that could only pretend)
    "MEMBER_ERASED", "PERSONAL_DATA_IN_CLEAR",
}


def test_every_contract_error_code_is_in_the_reply_vocabulary():
    assert set(typing.get_args(replies.ErrorCode)) >= CONTRACT_ERROR_CODES


def test_each_domain_error_maps_to_its_own_contract_code():
    codes = [cls.code for cls in errors.DomainError.__subclasses__()]
    assert len(codes) == len(set(codes))
    assert set(codes) == CONTRACT_ERROR_CODES - {"UNAVAILABLE"}


def test_the_failure_envelope_has_ok_false_and_a_coded_error():
    assert replies.encode(replies.failure("INVALID_TIME", "too early")) == (
        b'{"ok":false,"error":{"code":"INVALID_TIME","message":"too early"}}'
    )


def test_the_success_envelope_has_ok_true_data_and_seq():
    ok = replies.CommandOk(data=replies.SentData("1-x", True, None, 4), seq=12)
    assert msgspec.json.decode(replies.encode(ok)) == {
        "ok": True, "seq": 12,
        "data": {"inmail_id": "1-x", "charged": True, "free_reason": None, "credits_left": 4,
                 "scheduled_for": None},
    }


# Policy v1 as data ----------------------------------------------------------------------------------


def test_policy_v1_is_the_contracts_tier_table():
    table = {tier: (rules.monthly_allotment, rules.cap, rules.paid, rules.bulk)
             for tier, rules in POLICY_V1.tiers.items()}
    assert table == {
        "free": (0, 0, False, False),
        "premium_career": (5, 15, True, False),
        "premium_business": (15, 45, True, False),
        "sales_navigator": (50, 150, True, False),
        "recruiter_lite": (30, 120, True, True),
        "recruiter": (150, 600, True, True),
    }
    assert set(POLICY_V1.tiers) == set(typing.get_args(Tier))


def test_policy_v1_limits_are_the_contracts():
    p = POLICY_V1
    assert (p.subject_max_chars, p.body_max_chars, p.inmail_cost) == (200, 1900, 1)
    assert (p.refund_window, p.bulk_min_recipients, p.bulk_max_recipients) == (timedelta(days=90), 2, 25)


def test_policy_v1_scheduling_and_the_response_rate_floor_are_the_contracts():
    p = POLICY_V1
    tiers = {tier for tier, rules in p.tiers.items() if rules.scheduled_sends}
    assert tiers == {"recruiter", "recruiter_lite"}
    assert {tier for tier, rules in p.tiers.items() if rules.automated_follow_ups} == {"recruiter"}
    assert {tier for tier, rules in p.tiers.items() if rules.rate_floor} == {"recruiter", "recruiter_lite"}
    s = p.scheduling
    assert (s.horizon, s.follow_up_min_days, s.follow_up_max_days, s.follow_up_default_days) == (
        timedelta(days=90), 3, 28, 7
    )
    e = p.enforcement
    assert (e.period, e.assess_after, e.min_inmails, e.rate_floor, e.warning, e.suspension) == (
        timedelta(days=14), timedelta(days=7), 100, 0.13, timedelta(days=14), timedelta(days=14)
    )
