// The admin page's timeline: the registry's history of the connections and
// the feature gate's audit of their settings, merged newest first, in
// words. Each source is read a page at a time, newest first, and only as
// far as the rows shown need: "Show older changes" takes the next rows
// from whichever source has the newer one. It uses app.js's api() and $.
"use strict";

const TIMELINE_PAGE = 20;
const ALL = "-";

// Who acts for ghconnect itself.
const SYSTEM_ACTORS = {
  "system:reconciler": "ghconnect, finishing a disconnect",
  "system:registry": "ghconnect, following the connection",
  "system:key-follower": "ghconnect, following the App key in Vault",
  "system:broker": "ghconnect, refreshing a GitHub.com authorization",
};

const STATE_WORDS = { PENDING: "Pending", CONNECTED: "Connected", DISCONNECTING: "Disconnecting", DISCONNECTED: "Disconnected" };

const timeline = { gen: 0, sources: [], names: {} };

function featureTitle(f) {
  const info = state.features.find((x) => x.feature === f);
  return info ? info.title : featureName(f).replace(/_/g, " ");
}

// what is an event's action in words: the summary each service derives
// from its actions' table (a service older than summaries: the action's
// stored name).
const what = (ev) => ev.summary || ev.action;

function settingWords(f, s) {
  if (!s || !s.enabled) return "off";
  return f === "FEATURE_UNIFIED_SEARCH" ? `on, private repositories ${s.includePrivate ? "included" : "not included"}` : "on";
}

// rowOfRegistry and rowOfGate put an event of either source in the same
// shape: time, who, connection, what, from → to.
function rowOfRegistry(ev) {
  const from = short(ev.fromState), to = short(ev.toState);
  return {
    at: Date.parse(ev.eventTime), actor: ev.actor, via: ev.via, connection: ev.connectionId,
    what: what(ev) + (ev.reason ? ` (${ev.reason})` : ""),
    change: from !== to ? [`${STATE_WORDS[from] || "—"} → ${STATE_WORDS[to] || "—"}`] : [],
  };
}

function rowOfGate(ev) {
  return {
    at: Date.parse(ev.eventTime), actor: ev.actor, via: ev.via, connection: ev.connectionId,
    what: what(ev),
    change: (ev.changes || []).map((c) => `${featureTitle(c.feature)}: ${settingWords(c.feature, c.from)} → ${settingWords(c.feature, c.to)}`),
  };
}

function timelineSources(conn) {
  const id = encodeURIComponent(conn);
  return [
    { path: `/v1/connections/${id}/history`, row: rowOfRegistry },
    { path: `/v1/connections/${id}/features/history`, row: rowOfGate },
  ].map((s) => ({ ...s, rows: [], next: "", done: false }));
}

// head is a source's newest row not shown yet, reading its next page when
// it has none at hand; null when the source has no more.
async function head(src) {
  if (!src.rows.length && !src.done) {
    const q = new URLSearchParams({ newestFirst: "true", pageSize: String(TIMELINE_PAGE) });
    if (src.next) q.set("pageToken", src.next);
    const page = await api("GET", `${src.path}?${q}`);
    src.rows.push(...(page.events || []).map(src.row));
    src.next = page.nextPageToken || "";
    src.done = !src.next;
  }
  return src.rows[0] || null;
}

// connectionName is how the timeline names a connection.
function connectionName(c) {
  return `${c.serverHostname} → ${c.account.login}, ${(STATE_WORDS[short(c.state)] || "").toLowerCase()}, created ${new Date(c.createTime).toLocaleDateString()}`;
}

// renderTimeline shows the newest changes of the connection chosen (all
// by default); conns are the connections the page read, newest first.
async function renderTimeline(conns) {
  const select = $("#timeline-connection");
  const chosen = select.value || ALL;
  timeline.names = {};
  const options = [Object.assign(document.createElement("option"), { value: ALL, textContent: "All connections" })];
  for (const c of conns) {
    timeline.names[c.id] = `${c.serverHostname} → ${c.account.login}`;
    options.push(Object.assign(document.createElement("option"), { value: c.id, textContent: connectionName(c) }));
  }
  select.replaceChildren(...options);
  select.value = timeline.names[chosen] ? chosen : ALL;
  select.onchange = refreshTimeline;
  $("#timeline-more").onclick = () => showOlder(timeline.gen).catch(() => { /* shown by api() */ });
  await restartTimeline();
}

// refreshTimeline shows the newest changes again, after one of the page's.
function refreshTimeline() {
  restartTimeline().catch(() => { /* shown by api() */ });
}

// restartTimeline reads the newest changes again. The rows shown stay
// until the new ones replace them at once, and the table is aria-busy
// meanwhile: the table is never seen empty or half drawn.
async function restartTimeline() {
  const gen = ++timeline.gen;
  timeline.sources = timelineSources($("#timeline-connection").value || ALL);
  await showOlder(gen, true);
}

// showOlder adds the next rows, newest first across both sources, or
// (replace) puts them in place of the rows shown; gen drops the work of a
// timeline replaced meanwhile.
async function showOlder(gen, replace = false) {
  const btn = $("#timeline-more");
  const table = $("#timeline");
  btn.disabled = true;
  table.setAttribute("aria-busy", "true");
  try {
    const rows = [];
    while (rows.length < TIMELINE_PAGE) {
      const heads = await Promise.all(timeline.sources.map(head));
      if (gen !== timeline.gen) return;
      let pick = -1;
      heads.forEach((h, i) => { if (h && (pick < 0 || h.at > heads[pick].at)) pick = i; });
      if (pick < 0) break;
      rows.push(timeline.sources[pick].rows.shift());
    }
    const tbody = $("#timeline tbody");
    if (replace) tbody.replaceChildren(...rows.map(timelineRow));
    else tbody.append(...rows.map(timelineRow));
    const more = timeline.sources.some((s) => s.rows.length || !s.done);
    btn.hidden = !more;
    const n = tbody.children.length;
    const id = $("#timeline-connection").value;
    const scope = id === ALL ? "all connections" : timeline.names[id];
    $("#timeline-status").textContent = n === 0 ? `No changes yet for ${scope}.`
      : `Showing the ${n} newest change${n === 1 ? "" : "s"} of ${scope}${more ? "; Show older changes reads more." : ", all there are."}`;
  } finally {
    if (gen === timeline.gen) {
      btn.disabled = false;
      table.setAttribute("aria-busy", "false");
    }
  }
}

function timelineRow(r) {
  const tr = document.createElement("tr");
  const when = document.createElement("time");
  when.dateTime = new Date(r.at).toISOString();
  when.textContent = new Date(r.at).toLocaleString(undefined, { timeZoneName: "short" });
  const who = SYSTEM_ACTORS[r.actor] || r.actor + (r.via ? ` (via ${r.via})` : "");
  const change = r.change.map((line) => Object.assign(document.createElement("div"), { textContent: line }));
  for (const content of [[when], [who], [timeline.names[r.connection] || r.connection], [r.what], change]) {
    const td = document.createElement("td");
    td.append(...content);
    tr.append(td);
  }
  return tr;
}
