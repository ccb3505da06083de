"""Every decision records the version of the policy it was decided under: the one its Context
carries (``ctx.policy.version``), not a constant. A policy v2 decides every command here, and
every event of every type says 2."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from contracts.commands import (
    AcknowledgeInMail,
    AssessResponseRate,
    AutomatedFollowUp,
    BlockMember,
    CancelFollowUp,
    CancelScheduledInMail,
    ChangeTier,
    ConnectMembers,
    DeclineInMail,
    DeliverScheduledInMail,
    EndBulkSuspension,
    EraseMember,
    MarkInMailRead,
    RecordReply,
    RefreshCredits,
    RegisterMember,
    SendAutomatedFollowUp,
    SendBulkInMail,
    SendInMail,
    UpdatePreferences,
)
from contracts.events import EVENT_TYPES, EventSkipped, InMailScheduled, InMailSent, ResponseRateAssessed
from contracts.personal import token
from contracts.policy import POLICY_V1, Policy
from tests.unit.history import History, day

V2 = msgspec.structs.replace(
    POLICY_V1,
    version=2,
    # Two InMails make a period count, so a short history reaches every stage.
    enforcement=msgspec.structs.replace(POLICY_V1.enforcement, min_inmails=2),
)
FOLLOW_UP = AutomatedFollowUp(after_days=3, subject="Still interested?", body="Just checking in.")


def _register(member_id: str, tier: str) -> RegisterMember:
    return RegisterMember(
        command_id=f"reg-{member_id}",
        member_id=member_id,
        display_name=token(member_id, "display_name", "c2VhbGVk"),  # as recorded since encryption
        email=f"{member_id}@example.com",
        tier=tier,  # type: ignore[arg-type]
    )


def _send(n: int, recipient: str, **fields: object) -> SendInMail:
    return SendInMail(
        command_id=f"send-{n}",
        sender_id="r",
        recipient_id=recipient,
        subject=f"Role {n}",
        body="Would you like to talk?",
        **fields,  # type: ignore[arg-type]
    )


def every_kind_of_decision(rules: Policy) -> History:
    """A recruiter's two months: every command, so every event type, decided under ``rules``.

    Its assessments are the ones the service's due work would perform under a floor that
    counts periods of two InMails or more (``V2``): the first period warns, the second is
    assessed while warned, the warning period suspends, the suspension ends.
    """
    h = History(rules)
    for member_id, tier in [("r", "recruiter"), ("p", "premium_career"), ("c1", "free"), ("c2", "free"),
                            ("c3", "free"), ("c4", "free")]:
        h.do(_register(member_id, tier), day(0))
    h.do(ChangeTier(command_id="tier", member_id="p", tier="sales_navigator"), day(1))
    h.do(UpdatePreferences(command_id="prefs", member_id="c3", inmail_opt_out=True), day(1))
    h.do(ConnectMembers(command_id="connect", member_id="r", other_member_id="c1"), day(1))
    h.do(BlockMember(command_id="block", member_id="c2", blocked_member_id="p"), day(1))
    [to_c1] = h.do(_send(1, "c1"), day(2))
    [to_c2] = h.do(_send(2, "c2"), day(2))
    assert isinstance(to_c1, InMailSent) and isinstance(to_c2, InMailSent)
    period = datetime(2026, 1, 7, tzinfo=UTC)
    h.do(AssessResponseRate(command_id="assess-1", member_id="r", period_start=period), day(23))
    bulk = h.do(
        SendBulkInMail(
            command_id="bulk",
            sender_id="r",
            recipient_ids=["c2", "c4"],
            subject="Openings",
            body="Two roles",
            automated_follow_up=FOLLOW_UP,
        ),
        day(24),
    )
    bulk_to_c2, bulk_to_c4 = (e for e in bulk if isinstance(e, InMailSent))
    assert bulk_to_c2.automated_follow_up and bulk_to_c4.automated_follow_up
    h.do(CancelFollowUp(command_id="no-follow-up", inmail_id=bulk_to_c4.inmail_id, member_id="r"), day(25))
    h.do(MarkInMailRead(command_id="read", inmail_id=to_c2.inmail_id, member_id="c2"), day(26))
    h.do(AcknowledgeInMail(command_id="ack", inmail_id=to_c2.inmail_id, member_id="c2"), day(26))
    h.do(RecordReply(command_id="reply", inmail_id=to_c2.inmail_id, member_id="c2", body="Yes"), day(26))
    h.do(DeclineInMail(command_id="decline", inmail_id=to_c1.inmail_id, member_id="c1"), day(26))
    h.do(RefreshCredits(command_id="refresh-p", member_id="p", month="2026-02"), day(27))
    follow_up = bulk_to_c2.automated_follow_up.inmail_id
    auto = SendAutomatedFollowUp(command_id="auto", member_id="r", inmail_id=follow_up, recipient_id="c2")
    h.do(auto, day(27))
    [later] = h.do(_send(3, "c2", send_at=day(30)), day(28))
    [called_off] = h.do(_send(4, "c4", send_at=day(31)), day(28))
    assert isinstance(later, InMailScheduled) and isinstance(called_off, InMailScheduled)
    h.do(CancelScheduledInMail(command_id="cancel", inmail_id=called_off.inmail_id, member_id="r"), day(29))
    h.do(DeliverScheduledInMail(command_id="deliver", member_id="r", inmail_id=later.inmail_id,
                                recipient_id="c2"), day(30))
    second = datetime(2026, 1, 21, tzinfo=UTC)
    h.do(AssessResponseRate(command_id="assess-2", member_id="r", period_start=second), day(37))
    warning = datetime(2026, 1, 28, tzinfo=UTC)
    h.do(AssessResponseRate(command_id="assess-3", member_id="r", period_start=warning, warning_period=True),
         day(44))
    h.do(EndBulkSuspension(command_id="unsuspend", member_id="r", since=datetime(2026, 2, 18, tzinfo=UTC)),
         day(58))
    h.do(EraseMember(command_id="erase", member_id="c4"), day(59))
    return h


def test_every_decision_records_the_version_of_the_policy_in_its_context() -> None:
    history = every_kind_of_decision(V2)
    events = [event for _, event in history.recorded]
    assert {type(event) for event in events} == set(EVENT_TYPES) - {EventSkipped}
    assert {event.policy for event in events} == {2}
    stages = [event.stage for event in events if isinstance(event, ResponseRateAssessed)]
    assert stages == ["warned", "warned", "suspended"]


def test_the_same_decisions_under_v1_record_1() -> None:
    events = [event for _, event in every_kind_of_decision(POLICY_V1).recorded]
    # Under v1 a period needs 100 InMails: the first assessment leaves the stage as it was.
    assert {event.policy for event in events} == {1}
