// A server user's own page: connect or disconnect their GitHub.com
// account, what the Connect features do for them, unified search. It
// talks to the gateway's /me/api (me.go), as the person signed in.
"use strict";

const $ = (sel) => document.querySelector(sel);
let session = null;

// The words for what came back from GitHub.com (?linked= or ?error=).
const ARRIVALS = {
  "linked": "Your GitHub.com account is connected.",
  "denied": "You cancelled on GitHub.com: no account was connected.",
  "taken": "That GitHub.com account is already connected to another user of this server. Sign in to GitHub.com as yourself and connect again.",
  "stale": "That connection attempt is no longer valid (it was used, expired, or started in another browser). Start again.",
  "github": "GitHub.com could not complete the authorization. Try again in a moment.",
  "unavailable": "This server could not complete the connection. Try again in a moment.",
};

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = session.csrf_token;
  if (body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, credentials: "same-origin", headers, body: body ? JSON.stringify(body) : undefined });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.message || `the server answered ${resp.status}`);
  return data;
}

function say(msg) { $("#notice").textContent = msg; }

function show(ids) {
  for (const id of ["signin", "off", "account", "features-section", "contrib-section", "search-section"]) $("#" + id).hidden = !ids.includes(id);
}

// featureWords says what a feature does for the person, as Check found.
function featureWords(r, linked) {
  const why = r.reason || "";
  if (r.feature === "FEATURE_UNIFIED_SEARCH") {
    if (why === "REASON_DISABLED" || why === "REASON_NOT_CONNECTED") return ["Unified search", "Off for this server."];
    return ["Unified search", linked
      ? "On. Searches show GitHub.com results; private ones only from repositories you may see on GitHub.com, as your connected account, and only if your site administrator includes private repositories. Your searches are sent to GitHub.com."
      : "On for public GitHub.com results. Connect your GitHub.com account to also see private results you may see there."];
  }
  if (r.feature === "FEATURE_UNIFIED_CONTRIBUTIONS") {
    if (why === "REASON_DISABLED" || why === "REASON_NOT_CONNECTED") return ["Unified contributions", "Off for this server."];
    const what = "Sends only the number of your contributions per day (never their content) to your GitHub.com profile";
    if (why === "REASON_RECONNECT_NEEDED") return ["Unified contributions", `${what}. Connect your GitHub.com account again for them to be sent.`];
    return ["Unified contributions", linked ? `${what}, once you opt in below.` : `${what}. Connect your GitHub.com account to opt in.`];
  }
  return [r.feature, why];
}

async function load() {
  try {
    const resp = await fetch("/auth/session", { credentials: "same-origin" });
    session = resp.ok ? await resp.json() : null;
  } catch {
    session = null;
  }
  if (!session) {
    show(["signin"]);
    return;
  }
  $("#whoami").textContent = `Signed in as ${session.login}`;
  $("#signout").hidden = false;
  let me;
  try {
    me = await api("GET", "/me/api");
  } catch (e) {
    say("Could not read your settings: " + e.message);
    return;
  }
  if (!me.connection) {
    show(["off"]);
    return;
  }
  // Opting in to unified contributions needs a linked account and the
  // feature on for the server.
  const contrib = ((me.features && me.features.results) || []).find((r) => r.feature === "FEATURE_UNIFIED_CONTRIBUTIONS");
  const contribOn = contrib && contrib.reason !== "REASON_DISABLED" && contrib.reason !== "REASON_NOT_CONNECTED";
  const withContrib = !!me.link && contribOn && !!me.contributions;
  show(["account", "features-section", ...(withContrib ? ["contrib-section"] : []), "search-section"]);
  if (withContrib) showContributions(me.contributions);
  watchContributions(withContrib);
  $("#account-hint").textContent = `This server (${me.connection.serverHostname}) is connected to the GitHub.com account ${me.connection.account}.`;
  const link = me.link;
  $("#unlinked").hidden = !!link;
  $("#linked").hidden = !link;
  if (link) {
    const broken = link.status === "LINK_STATUS_RECONNECT_NEEDED";
    $("#linked-as").textContent = `Linked as ${link.githubLogin} (id ${link.githubId})` + (link.linkTime ? `, since ${new Date(link.linkTime).toLocaleString(undefined, { timeZoneName: "short" })}` : "") + ".";
    $("#reconnect").hidden = !broken;
    $("#reconnect-btn").hidden = !broken;
  }
  const list = $("#my-features");
  list.replaceChildren();
  for (const r of (me.features && me.features.results) || []) {
    const [title, words] = featureWords(r, !!link && link.status !== "LINK_STATUS_RECONNECT_NEEDED");
    const li = document.createElement("li");
    const h = Object.assign(document.createElement("strong"), { textContent: title });
    li.append(h, Object.assign(document.createElement("p"), { className: "hint", textContent: words }));
    list.append(li);
  }
}

// The person's unified-contributions status, as the feature gate says it;
// read again every few seconds while the page shows it, since counts leave
// for GitHub.com in the background.
let contribTimer = null;

function showContributions(c) {
  $("#contrib-what").textContent = c.sent || "";
  $("#contrib-state").textContent = c.message || "";
  const waiting = c.waitingDays ? ` ${c.waitingDays} day${c.waitingDays === 1 ? "" : "s"} of counts waiting.` : "";
  $("#contrib-last").textContent = (c.lastSentTime
    ? `${c.lastSentRemoval ? "Removed from your GitHub.com profile" : "Last sent to GitHub.com"}: ${new Date(c.lastSentTime).toLocaleString(undefined, { timeZoneName: "short" })}.`
    : "Nothing sent to GitHub.com yet.") + waiting;
  $("#contrib-optin").hidden = !!c.optedIn;
  $("#contrib-optout").hidden = !c.optedIn;
}

function watchContributions(on) {
  clearInterval(contribTimer);
  contribTimer = on ? setInterval(async () => {
    if (document.visibilityState !== "visible") return;
    try {
      showContributions(await api("GET", "/me/api/contributions"));
    } catch { /* the next read tries again; load() said what it could */ }
  }, 5000) : null;
}

async function setContributions(btn, optedIn) {
  btn.disabled = true;
  try {
    await api("POST", "/me/api/contributions", { optedIn });
    showContributions(await api("GET", "/me/api/contributions"));
    say(optedIn
      ? "You opted in: your daily contribution counts are sent to your GitHub.com profile."
      : "You opted out: nothing more is sent, and what was sent is being removed from your GitHub.com profile.");
    (optedIn ? $("#contrib-out") : $("#contrib-in")).focus();
  } catch (e) {
    say("Could not change your choice: " + e.message);
  } finally {
    btn.disabled = false;
  }
}

async function connect(btn) {
  btn.disabled = true;
  try {
    const out = await api("POST", "/me/api/link");
    location.assign(out.authorizeUrl);
  } catch (e) {
    say("Could not start connecting: " + e.message);
    btn.disabled = false;
  }
}

async function disconnect() {
  const btn = $("#disconnect");
  btn.disabled = true;
  try {
    await api("POST", "/me/api/unlink");
    say("Your GitHub.com account is disconnected: this server's authorization was revoked on GitHub.com.");
    await load();
    $("#connect").focus();
  } catch (e) {
    say("Could not disconnect: " + e.message);
  } finally {
    btn.disabled = false;
  }
}

async function search(ev) {
  ev.preventDefault();
  const status = $("#search-status");
  const results = $("#results");
  status.textContent = "Searching…";
  results.replaceChildren();
  try {
    const out = await api("POST", "/me/api/search", { query: $("#query").value, kind: $("#kind").value });
    const hits = out.results || [];
    for (const r of hits) {
      const li = document.createElement("li");
      const a = Object.assign(document.createElement("a"), { href: r.url, textContent: `${r.repository}: ${r.title}` });
      li.append(a);
      if (r.private) li.append(" ", Object.assign(document.createElement("span"), { className: "badge", textContent: "private" }));
      results.append(li);
    }
    status.textContent = `${hits.length} result${hits.length === 1 ? "" : "s"} from GitHub.com.` + (out.privateNotice ? ` ${out.privateNotice}` : "");
  } catch (e) {
    status.textContent = "Search failed: " + e.message;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const q = new URLSearchParams(location.search);
  const arrival = q.has("linked") ? "linked" : q.get("error");
  if (arrival) history.replaceState(null, "", "/me");
  $("#connect").addEventListener("click", (e) => connect(e.target));
  $("#reconnect-btn").addEventListener("click", (e) => connect(e.target));
  $("#disconnect").addEventListener("click", disconnect);
  $("#contrib-in").addEventListener("click", (e) => setContributions(e.target, true));
  $("#contrib-out").addEventListener("click", (e) => setContributions(e.target, false));
  $("#search-form").addEventListener("submit", search);
  $("#signout").addEventListener("click", async () => {
    await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": session.csrf_token } }).catch(() => {});
    location.assign("/");
  });
  await load();
  if (arrival) say(ARRIVALS[arrival] || ARRIVALS.unavailable);
});
