from contracts.commands import RecordReply
from contracts.events import InMailSent
from services.domain import errors
from tests.unit.scenario import DAY, T0, Scenario, register, send


def test_send_inmail_charges_one_credit_and_reply_refunds_it():
    s = Scenario()
    s.done(register("alice"))
    s.done(register("bob"))
    s.when(send("alice", "bob"))
    s.then({"type": "InMailSent", "charged": True, "free_reason": None})
    [mail] = s.decided(InMailSent)
    s.record()
    assert s.state("alice").balance == 4
    reply = RecordReply(command_id="c2", inmail_id=mail.inmail_id, member_id="bob", body="Sure")
    s.when(reply, at=T0 + 3 * DAY)
    s.then({"type": "InMailReplied"}, {"type": "CreditRefunded", "inmail_id": mail.inmail_id})
    s.record()
    assert s.state("alice").balance == 5


def test_free_tier_cannot_send_a_charged_inmail():
    s = Scenario()
    s.done(register("alice", tier="free"))
    s.done(register("bob"))
    s.when(send("alice", "bob"))
    s.then_error(errors.TierNotAllowed)
