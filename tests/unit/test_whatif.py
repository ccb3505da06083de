"""What-if replay (CONTRACT section 10) on hand-built histories: the same policy changes nothing;
a lower Recruiter cap, a shorter refund window and another response-rate floor change exactly
what a hand count says."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from contracts.commands import (
    DeclineInMail,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendInMail,
)
from contracts.events import AnyEvent, InMailScheduled, InMailSent
from contracts.personal import PERSONAL_FIELDS, PLAN_FIELDS, is_sealed, token
from contracts.policy import POLICY_V1, Policy
from contracts.types import Tier
from contracts.whatif import Compared, MemberDifference, StageCompared
from services.whatif import WhatIf
from tests.unit.history import History, day
from tests.unit.test_policy_versions import V2, every_kind_of_decision


def whatif(rules: Policy, recorded: Iterable[tuple[int, AnyEvent]]) -> WhatIf:
    engine = WhatIf(rules)
    for seq, event in recorded:
        engine.apply(seq, event)
    engine.finish()
    return engine


def with_tier(rules: Policy, tier: Tier, **changes: int) -> Policy:
    tiers = dict(rules.tiers)
    tiers[tier] = msgspec.structs.replace(tiers[tier], **changes)
    return msgspec.structs.replace(rules, version=rules.version + 1, tiers=tiers)


def register(h: History, member_id: str, tier: Tier) -> None:
    h.do(
        RegisterMember(
            command_id=f"reg-{member_id}",
            member_id=member_id,
            display_name=member_id,
            email=f"{member_id}@example.com",
            tier=tier,
        ),
        day(0),
    )


def send(h: History, n: int, sender: str, recipient: str, at: datetime) -> InMailSent:
    cmd = SendInMail(
        command_id=f"s{n}", sender_id=sender, recipient_id=recipient, subject="Role", body="Talk?"
    )
    [*_, sent] = h.do(cmd, at)
    assert isinstance(sent, InMailSent) and sent.charged
    return sent


def refresh(h: History, member_id: str, month: str, at: datetime) -> None:
    h.do(RefreshCredits(command_id=f"refresh-{month}", member_id=member_id, month=month), at)


def test_the_recorded_policy_reports_no_difference_for_any_kind_of_decision() -> None:
    for rules in (POLICY_V1, V2):
        history = every_kind_of_decision(rules)
        engine = whatif(rules, history.recorded)
        report = engine.report()
        assert report.members == []
        for name in ("balance", "charged", "refunded", "forfeited", "refused"):
            total: Compared = getattr(report.total, name)
            assert total.recorded == total.whatif, name
        # Decided again, not copied: the what-if recruiter holds the same InMails, refunds and stage.
        recorded, again = engine.recorded["r"], engine.whatif["r"]
        assert again is not recorded
        assert {i: m.refunded for i, m in again.inmails.items()} == {
            i: m.refunded for i, m in recorded.inmails.items()
        }
        if rules is V2:  # under v1 the floor needs 100 InMails: no assessment is due at all
            assert again.assessed.keys() == recorded.assessed.keys()
        assert (again.balance, again.spent, again.refunded, again.stage) == (
            recorded.balance, recorded.spent, recorded.refunded, recorded.stage
        )
    assert report.total.charged.recorded > 0 and report.total.refunded.recorded > 0


def test_a_recruiter_cap_of_3x_forfeits_more_and_refuses_the_sends_beyond_it() -> None:
    h = History()
    register(h, "r", "recruiter")
    for c in range(5):
        register(h, f"c{c}", "free")
    for month in ("2026-02", "2026-03", "2026-04", "2026-05"):
        refresh(h, "r", month, datetime.fromisoformat(f"{month}-01T06:00:00+00:00"))
    may_2 = datetime.fromisoformat("2026-05-02T10:00:00+00:00")
    sent = [send(h, n, "r", f"c{n % 5}", may_2) for n in range(460)]
    # The 455th InMail goes beyond a 450-credit balance: its reply refunds only as recorded.
    h.do(RecordReply(command_id="reply", inmail_id=sent[454].inmail_id, member_id="c4", body="Yes"),
         may_2 + timedelta(days=3))
    h.do(DeclineInMail(command_id="decline", inmail_id=sent[0].inmail_id, member_id="c0"),
         may_2 + timedelta(days=3))

    three_times = with_tier(POLICY_V1, "recruiter", cap=450)
    report = whatif(three_times, h.recorded).report()

    # Recorded: 150 + 3 x 150 = 600, May's 150 forfeited; 460 sent; 2 refunds: 142.
    # 3x: April's 150 and May's 150 forfeited (450 left each time); 450 sent, 10 refused; 1 refund: 1.
    assert report.members == [
        MemberDifference(
            member_id="r",
            balance=Compared(142, 1),
            charged=Compared(460, 450),
            refunded=Compared(2, 1),
            forfeited=Compared(150, 300),
            refused=Compared(0, 10),
            stage=StageCompared("ok", "ok"),
        )
    ]
    assert report.total.balance == Compared(142, 1) and report.total.refused == Compared(0, 10)
    assert report.total.stage.recorded == report.total.stage.whatif == {"ok": 6, "warned": 0, "suspended": 0}


def test_a_60_day_refund_window_takes_back_exactly_the_refunds_after_day_60() -> None:
    h = History()
    register(h, "s", "recruiter")
    for c in range(1, 6):
        register(h, f"c{c}", "free")
    sent = {c: send(h, c, "s", f"c{c}", day(0)) for c in range(1, 6)}
    refreshes = {27: "2026-02", 55: "2026-03", 86: "2026-04"}
    replies = {30: 1, 75: 3, 95: 5}
    declines = {60: 2, 90: 4}
    for days in sorted(refreshes.keys() | replies.keys() | declines.keys()):
        if days in refreshes:
            refresh(h, "s", refreshes[days], day(days))
        elif days in replies:
            c = replies[days]
            h.do(RecordReply(command_id=f"r{c}", inmail_id=sent[c].inmail_id, member_id=f"c{c}", body="Hi"),
                 day(days))
        else:
            c = declines[days]
            h.do(DeclineInMail(command_id=f"d{c}", inmail_id=sent[c].inmail_id, member_id=f"c{c}"), day(days))

    sixty_days = msgspec.structs.replace(POLICY_V1, version=2, refund_window=timedelta(days=60))
    engine = whatif(sixty_days, h.recorded)

    recorded = {c: engine.recorded["s"].inmails[m.inmail_id].refunded for c, m in sent.items()}
    again = {c: engine.whatif["s"].inmails[m.inmail_id].refunded for c, m in sent.items()}
    assert recorded == {1: True, 2: True, 3: True, 4: True, 5: False}  # 90 days inclusive
    assert again == {1: True, 2: True, 3: False, 4: False, 5: False}  # 60 days inclusive
    [member] = engine.report().members
    assert member == MemberDifference(
        member_id="s",
        balance=Compared(150 - 5 + 3 * 150 + 4, 150 - 5 + 3 * 150 + 2),
        charged=Compared(5, 5),
        refunded=Compared(4, 2),
        forfeited=Compared(0, 0),
        refused=Compared(0, 0),
        stage=StageCompared("ok", "ok"),
    )


def test_another_floor_changes_the_stages_found_in_the_what_if_history() -> None:
    under_v2 = every_kind_of_decision(V2).recorded
    # Suspended when the history stops (before the suspension ends), as recorded under v2.
    until_suspended = [(seq, event) for seq, event in under_v2 if event.occurred_at < day(58)]
    no_floor = msgspec.structs.replace(
        V2, version=3, enforcement=msgspec.structs.replace(V2.enforcement, rate_floor=0.0)
    )
    [r] = whatif(no_floor, until_suspended).report().members
    assert r.stage == StageCompared("suspended", "ok")
    assert (r.balance.recorded, r.charged.recorded) == (r.balance.whatif, r.charged.whatif)

    # Under v1 a period needs 100 InMails: no stage moved. Under v2's two, the what-if finds the
    # warning, assesses the warning period and suspends bulk InMail by itself.
    under_v1 = [(seq, event) for seq, event in every_kind_of_decision(POLICY_V1).recorded
                if event.occurred_at < day(58)]
    [r] = whatif(V2, under_v1).report().members
    assert r.stage == StageCompared("ok", "suspended")
    engine = whatif(V2, under_v1)
    assert set(engine.whatif["r"].assessed) == {
        (datetime(2026, 1, 7, tzinfo=UTC), False),
        (datetime(2026, 1, 21, tzinfo=UTC), False),
        (datetime(2026, 1, 28, tzinfo=UTC), True),
    }
    assert engine.whatif["r"].stage_since == datetime(2026, 2, 18, tzinfo=UTC)


def test_bulk_and_follow_up_bounds_of_another_policy_refuse_the_recorded_sends_outside_them() -> None:
    history = every_kind_of_decision(V2).recorded
    # Its one SendBulkInMail goes to two members with a follow-up after three days.
    at_most_one = msgspec.structs.replace(V2, version=3, bulk_min_recipients=1, bulk_max_recipients=1)
    later = msgspec.structs.replace(
        V2, version=3, scheduling=msgspec.structs.replace(V2.scheduling, follow_up_min_days=5)
    )
    for rules in (at_most_one, later):
        [r] = whatif(rules, history).report().members
        assert r.refused == Compared(0, 2)
        # The bulk InMails, and the automated follow-up of one, were charged as recorded.
        assert r.charged == Compared(r.charged.recorded, r.charged.recorded - 3)


def test_the_json_report_has_exactly_the_shape_of_contract_section_10() -> None:
    h = History()
    register(h, "s", "premium_career")
    register(h, "c", "free")
    mail = send(h, 1, "s", "c", day(0))
    h.do(DeclineInMail(command_id="d", inmail_id=mail.inmail_id, member_id="c"), day(70))
    sixty_days = msgspec.structs.replace(POLICY_V1, version=2, refund_window=timedelta(days=60))
    document = json.loads(msgspec.json.encode(whatif(sixty_days, h.recorded).report()))

    measures = {"balance", "charged", "refunded", "forfeited", "refused", "stage"}
    assert set(document) == {"members", "total"}
    [member] = document["members"]
    assert set(member) == {"member_id"} | measures and set(document["total"]) == measures
    assert all(set(member[m]) == set(document["total"][m]) == {"recorded", "whatif"} for m in measures)
    assert member["member_id"] == "s"
    assert member["refunded"] == {"recorded": 1, "whatif": 0}
    # 5 granted, 1 sent, February's and March's 5 with the decline (day 70): 14, and the refund.
    assert member["balance"] == {"recorded": 15, "whatif": 14}
    assert member["stage"] == {"recorded": "ok", "whatif": "ok"}
    assert document["total"]["stage"] == {
        "recorded": {"ok": 2, "warned": 0, "suspended": 0},
        "whatif": {"ok": 2, "warned": 0, "suspended": 0},
    }


def _sealed(event: AnyEvent) -> AnyEvent:
    """The event as the service records it since encryption: its texts as tokens longer than any limit."""
    fields = PERSONAL_FIELDS.get(type(event).__name__, ())
    texts: dict[str, object] = {
        name: token(getattr(event, owner), field, "A" * 3_000) for name, field, owner in fields
    }
    if isinstance(event, InMailSent | InMailScheduled) and (plan := event.automated_follow_up) is not None:
        sealed = {name: token(event.sender_id, field, "B" * 3_000) for name, field in PLAN_FIELDS}
        texts["automated_follow_up"] = msgspec.structs.replace(plan, **sealed)
    return msgspec.structs.replace(event, **texts) if texts else event


def test_sealed_texts_are_decided_as_stand_ins_not_refused_as_too_long() -> None:
    recorded = [(seq, _sealed(event)) for seq, event in every_kind_of_decision(POLICY_V1).recorded]
    assert any(isinstance(event, InMailSent) and is_sealed(event.body) for _, event in recorded)
    report = whatif(POLICY_V1, recorded).report()
    assert report.members == []
    assert report.total.refused.recorded == report.total.refused.whatif == 0
