// A member's page: credits, balance over time, inbox, scheduled sends, enforcement, ledger; refreshed
// when their events arrive.
"use strict";

const memberId = decodeURIComponent(window.location.pathname.split("/").pop());
const shown = new Set();

async function refreshMember() {
  const member = await fetchJSON("/api/members/" + encodeURIComponent(memberId));
  const balance = member.balance;
  text("member", member.member_id);
  badge("tier", balance.tier);
  for (const [id, key] of [["balance", "balance"], ["allotment", "monthly_allotment"], ["cap", "cap"],
                           ["granted", "granted"], ["spent", "spent"], ["refunded", "refunded"],
                           ["forfeited", "forfeited"]]) {
    text(id, balance[key]);
  }
  const sent = member.sent, received = member.received;
  fill("counts", [
    { box: "received", sent: received.sent, read: received.read, replied: received.replied, declined: received.declined },
    { box: "sent", sent: sent.sent, read: sent.read, replied: sent.replied, declined: sent.declined },
  ], [["box"], ["sent", true], ["read", true], ["replied", true], ["declined", true]]);
  if (member.enforcement) {
    document.getElementById("enforcement").hidden = false;
    badge("stage", member.enforcement.stage);
    const e = member.enforcement;
    text("stage-detail", e.rate === null || e.rate === undefined ? "no assessment yet"
      : `rate ${(e.rate * 100).toFixed(1)}% of ${e.sent} InMails (threshold ${(e.threshold * 100).toFixed(0)}%)`);
  }
  const latest = document.getElementById("latest");
  latest.replaceChildren(...member.latest_received.map((item) => {
    const entry = document.createElement("li");
    entry.textContent = `${item.subject} — from ${item.sender_name} (${item.status}, ${when(item.sent_at)})`;
    entry.dataset.inmailId = item.inmail_id;
    if (shown.size && !shown.has(item.inmail_id)) { entry.className = "new"; }
    return entry;
  }));
  member.latest_received.forEach((item) => shown.add(item.inmail_id));
  const scheduled = document.getElementById("scheduled");
  scheduled.replaceChildren(...member.scheduled.map((item) => {
    const entry = document.createElement("li");
    const what = item.follow_up_of ? "follow-up" : "InMail";
    entry.textContent = `${item.subject} — ${what} to ${item.recipient_name}, due ${when(item.scheduled_for || item.sent_at)}`;
    entry.dataset.inmailId = item.inmail_id;
    return entry;
  }));
  if (!member.scheduled.length) {
    const none = document.createElement("li");
    none.className = "note";
    none.textContent = "nothing scheduled";
    scheduled.replaceChildren(none);
  }
  fill("ledger", member.ledger, [["seq", true], [(entry) => when(entry.occurred_at)], ["reason"],
                                 ["delta", true], ["balance_after", true], ["inmail_id"]]);
  text("live-error", "");
  await loadChart("chart-balance", "/api/members/" + encodeURIComponent(memberId) + "/balance.svg");
}

followLive(refreshMember, (update) => update.members === null || update.members.includes(memberId), 1000);
