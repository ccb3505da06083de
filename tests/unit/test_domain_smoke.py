from contracts.commands import RecordReply
from contracts.events import InMailSent
from contracts.replies import SentData
from services.domain import errors
from tests.unit.scenario import DAY, NEW, T0, given, refunded, registered, replied, send, sent


def test_send_inmail_charges_one_credit_and_reply_refunds_it():
    s = given(registered("alice"), registered("bob"))
    s.when(send("alice", "bob")).then(sent("alice", "bob", NEW))
    [mail] = s.recorded_of(InMailSent)
    assert s.reply == SentData(mail.inmail_id, True, None, 4)
    reply = RecordReply(command_id="c2", inmail_id=mail.inmail_id, member_id="bob", body="Sure")
    s.when(reply, at=T0 + 3 * DAY)
    s.then(replied(mail, body="Sure"), refunded(mail, NEW))
    assert s.state("alice").balance == 5


def test_free_tier_cannot_send_a_charged_inmail():
    s = given(registered("alice", tier="free"), registered("bob"))
    s.when(send("alice", "bob")).then_error(errors.TierNotAllowed)
