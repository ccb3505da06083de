// The dashboard: positions, commands and response rates, refreshed when new events arrive.
"use strict";

async function refreshDashboard() {
  const overview = await fetchJSON("/api/overview");
  badge("status", overview.status);
  text("role", "role: " + overview.role);
  text("stream-seq", overview.stream_seq.toLocaleString("en"));
  fill("projections", overview.projections, [["name"], ["position", true], ["lag", true]]);
  const problems = document.getElementById("problems");
  problems.replaceChildren(...Object.entries(overview.problems).map(([name, problem]) => {
    const item = document.createElement("li");
    item.textContent = name + ": " + problem;
    return item;
  }));
  if (overview.commands) {
    text("commands-ok", overview.commands.ok.toLocaleString("en"));
    text("commands-refused", overview.commands.refused.toLocaleString("en"));
  }
  text("live-error", "");
  await Promise.all(["commands", "errors", "rates-tier", "rates-kind", "rates-template"].map(
    (name) => loadChart("chart-" + name, "/api/charts/" + name + ".svg")));
}

document.getElementById("member-form").addEventListener("submit", (event) => {
  event.preventDefault();
  window.location.href = "/members/" + encodeURIComponent(document.getElementById("member-id").value);
});

followLive(refreshDashboard, () => true, 2000);
