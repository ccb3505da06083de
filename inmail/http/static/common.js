// Shared by the dashboard's pages: fetching figures and charts, and following the live updates.
"use strict";

async function fetchJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) { throw new Error(body.error || response.statusText); }
  return body;
}

async function loadChart(id, url) {
  const response = await fetch(url, { cache: "no-store" });
  if (response.ok) { document.getElementById(id).innerHTML = await response.text(); }
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

// "2026-03-01T09:30:00Z" as "2026-03-01 09:30" (UTC, as every time the service gives).
function when(time) {
  return time ? time.slice(0, 16).replace("T", " ") : "–";
}

function cell(row, value, numeric) {
  const td = row.insertCell();
  const shown = typeof value === "number" ? value.toLocaleString("en") : value;
  td.textContent = shown === null || shown === undefined ? "–" : shown;
  if (numeric) { td.className = "num"; }
  return td;
}

function fill(tbodyId, rows, columns) {
  const tbody = document.getElementById(tbodyId);
  tbody.replaceChildren();
  for (const item of rows) {
    const row = tbody.insertRow();
    for (const [key, numeric] of columns) { cell(row, typeof key === "function" ? key(item) : item[key], numeric); }
  }
}

function badge(id, status) {
  const element = document.getElementById(id);
  element.textContent = status;
  element.className = "badge " + status;
}

// Calls refresh() now, then again after new events arrive, at most every `spacing` ms.
// `wanted(update)` says whether an update concerns this page.
function followLive(refresh, wanted, spacing) {
  let running = false, again = false;
  async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await refresh(); } catch (error) { text("live-error", String(error.message || error)); }
    setTimeout(() => { running = false; if (again) { again = false; run(); } }, spacing);
  }
  const source = new EventSource("/api/events");
  source.onopen = () => document.getElementById("live").classList.add("on");
  source.onerror = () => document.getElementById("live").classList.remove("on");
  source.onmessage = (message) => {
    const update = JSON.parse(message.data);
    text("stream-seq", update.stream_seq.toLocaleString("en"));
    if (wanted(update)) { run(); }
  };
  run();
}
