// The GitHub Connect admin page: a client of the gateway's REST API only.
// It shows what the server says: after every failed action it reads the
// record and the features again rather than guessing what changed.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  token: sessionStorage.getItem("ghconnect-token") || "",
  // session is the single sign-on session ({user, roles, csrf_token}),
  // sso whether the gateway signs people in (else: an admin token).
  session: null,
  sso: false,
  features: [],
  // conn is the active connection shown, settings its feature settings
  // (with the etag a change must match); latest is the connection the
  // page's wording names (conn, or the last one when none is live).
  conn: null,
  latest: null,
  settings: null,
  // web is the GitHub.com site the deployment uses, for links to it.
  web: null,
};

const STATE = (s) => "CONNECTION_STATE_" + s;
const ACTIVE = [STATE("CONNECTED"), STATE("DISCONNECTING"), STATE("PENDING")];
const SECTIONS = ["signin", "disabled", "pending", "enabled", "disconnecting", "others", "timeline-section"];

class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  // isLiveRefusal: a create refused because the server has a live
  // connection already (the registry's LIVE_CONNECTION precondition).
  isLiveRefusal() {
    return (this.body.details || []).some((d) => (d.violations || []).some((v) => v.type === "LIVE_CONNECTION"));
  }
  // fieldViolations returns the BadRequest details: [{field, description}].
  fieldViolations() {
    const out = [];
    for (const d of this.body.details || []) {
      for (const v of d.fieldViolations || []) out.push(v);
    }
    return out;
  }
}

async function api(method, path, body) {
  let resp;
  try {
    const headers = { "Content-Type": "application/json" };
    if (state.session) {
      // The session cookie goes along; a change also carries the CSRF token.
      if (method !== "GET") headers["X-CSRF-Token"] = state.session.csrf_token;
    } else {
      headers["Authorization"] = "Bearer " + state.token;
    }
    resp = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    banner("Cannot reach the gateway. Check that ghconnect is running, then reload the page.");
    throw e;
  }
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (resp.status === 401) {
    signOut(state.sso ? "Your session has ended. Sign in again." : "Your token was not accepted. Sign in again.");
    throw new APIError(401, data);
  }
  if (resp.status === 403 && state.session && !canChange()) {
    banner("You are signed in as an auditor: you can see everything here and change nothing.");
  }
  if (resp.status === 502 || resp.status === 503 || resp.status === 504) {
    banner("A ghconnect service is unavailable: " + (data.message || resp.statusText));
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

// banner shows an error; say a plain message (both empty: hidden).
function banner(msg) {
  const b = $("#banner");
  b.textContent = msg;
  b.hidden = !msg;
}

function say(msg) {
  $("#notice").textContent = msg;
}

// show shows the named sections and empties the others' records and
// feature toggles, so nothing of another state lingers in the page.
function show(ids) {
  for (const s of SECTIONS) {
    const el = $("#" + s);
    el.hidden = !ids.includes(s);
    if (el.hidden) for (const dl of el.querySelectorAll(".record")) { dl.replaceChildren(); delete dl.dataset.connection; }
  }
  if (!ids.includes("enabled")) {
    $("#features").replaceChildren();
    delete $("#features").dataset.connection;
  }
  $("#signout").hidden = ids.includes("signin");
}

function signOut(msg) {
  state.token = "";
  state.session = null;
  sessionStorage.removeItem("ghconnect-token");
  show(["signin"]);
  say("");
  $("#whoami").textContent = "";
  $("#signin-sso").hidden = !state.sso;
  $("#signin-form").hidden = state.sso;
  if (state.sso) {
    setFieldError($("#token"), $("#token-error"), "");
    $("#sso-error").textContent = msg;
    $("#sso-error").hidden = !msg;
    $("#sso-link").focus();
  } else {
    setFieldError($("#token"), $("#token-error"), msg);
    $("#token").focus();
  }
}

// canChange: an auditor reads everything and changes nothing.
function canChange() {
  return !state.session || state.session.roles.includes("admin");
}

// applyRole leaves an auditor's page without controls that would only be
// refused, and says why.
function applyRole() {
  const ro = !canChange();
  $("#readonly-note").hidden = !ro;
  if (!ro) return;
  for (const id of ["disabled", "pending", "enabled", "disconnecting", "others"]) {
    for (const el of $("#" + id).querySelectorAll("button, input, select, textarea")) el.disabled = true;
  }
}

// readSession asks the gateway who is signed in (single sign-on), and
// whether it signs people in at all.
async function readSession() {
  try {
    const resp = await fetch("/auth/session", { credentials: "same-origin" });
    const data = await resp.json().catch(() => ({}));
    state.sso = !!data.sso || resp.status >= 500;
    state.session = resp.ok ? data : null;
    // Not "signed out": the gateway could not read its sessions.
    if (resp.status >= 500) banner("Your sign-in could not be checked just now: the gateway did not reach its session store. Reload the page in a moment.");
  } catch {
    state.session = null;
  }
  if (state.session) {
    state.session.roles = state.session.roles || [];
    // A server user who administers nothing has their own page.
    if (!state.session.roles.length) {
      location.replace("/me");
      return;
    }
    const roles = state.session.roles.join(", ");
    $("#whoami").textContent = `Signed in as ${state.session.user} (${roles})`;
    $("#my-page").hidden = false;
  }
}

async function signOutClicked() {
  if (state.session) {
    try {
      await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": state.session.csrf_token } });
    } catch { /* the session is dropped here anyway */ }
  }
  signOut("");
}

// setFieldError shows msg under input (or hides it when empty) and ties
// the two together for assistive technology.
function setFieldError(input, el, msg) {
  el.textContent = msg || "";
  el.hidden = !msg;
  for (const i of [].concat(input || [])) {
    const ids = (i.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && x !== el.id);
    if (msg) ids.unshift(el.id);
    if (ids.length) i.setAttribute("aria-describedby", ids.join(" "));
    else i.removeAttribute("aria-describedby");
    if (msg && i.matches("input, select, textarea")) i.setAttribute("aria-invalid", "true");
    else i.removeAttribute("aria-invalid");
  }
}

const short = (s) => (s || "").replace(/^CONNECTION_STATE_|^ACCOUNT_KIND_|^FEATURE_|^REASON_/, "");
const featureName = (f) => short(f).toLowerCase();

// webConfig is the deployment's GitHub.com site, read once.
async function webConfig() {
  if (state.web === null) {
    try {
      const resp = await fetch("/config.json");
      state.web = resp.ok ? ((await resp.json()).githubWebUrl || "") : "";
    } catch {
      state.web = "";
    }
  }
  return state.web;
}

// appSettingsURL is the GitHub.com page where the App's owner manages
// (and deletes) the App; empty when the page does not know the site.
function appSettingsURL(c) {
  if (!c || !c.app) return "";
  return settingsOf(c.account, c.app.slug);
}

function settingsOf(account, slug) {
  if (!state.web || !account || !slug) return "";
  const owner = account.kind === "ACCOUNT_KIND_ENTERPRISE" ? "enterprises" : "organizations";
  return `${state.web}/${owner}/${encodeURIComponent(account.login)}/settings/apps/${encodeURIComponent(slug)}`;
}

// renderAppsLeft lists every App this server created that GitHub.com may
// still hold (the registry asks GitHub.com), each with where to delete it.
async function renderAppsLeft() {
  let apps = [];
  try {
    apps = (await api("GET", "/v1/leftoverApps")).apps || [];
  } catch { /* the list is a reminder: the rest of the page stands without it */ }
  const ul = $("#apps-left-list");
  ul.replaceChildren();
  for (const a of apps) {
    const li = document.createElement("li");
    li.dataset.app = a.appId;
    const href = settingsOf(a.account, a.slug);
    const link = href
      ? Object.assign(document.createElement("a"), { href, textContent: "delete it in the App's settings" })
      : document.createTextNode("delete it in the App's settings on GitHub.com");
    const name = Object.assign(document.createElement("strong"), { textContent: a.slug });
    li.append(name, ` (${a.account.login}): `, link,
      a.status === "LEFTOVER_APP_STATUS_UNKNOWN" ? `. Not confirmed: ${a.note}.` : ". GitHub.com still has it.");
    ul.append(li);
  }
  $("#apps-left").hidden = apps.length === 0;
}

// fillConnectionText puts the account and the App's links into every
// place the wording (within root: the whole page by default) names them.
function fillConnectionText(c, root = document) {
  for (const el of root.querySelectorAll("strong.account")) el.textContent = c ? c.account.login : "";
  for (const el of root.querySelectorAll("strong.app-slug")) el.textContent = c && c.app ? c.app.slug : "";
  const href = appSettingsURL(c);
  for (const el of root.querySelectorAll("a.app-settings")) el.href = href || "#";
  for (const el of root.querySelectorAll(".app-settings-hint")) el.hidden = !href;
}

// stateSentence says in words what state the page shows.
function stateSentence(c) {
  if (!c) return "GitHub Connect is not enabled.";
  const who = c.account.login;
  return {
    [STATE("CONNECTED")]: `GitHub Connect is enabled for ${who}.`,
    [STATE("DISCONNECTING")]: `Disabling GitHub Connect for ${who} did not finish.`,
    [STATE("PENDING")]: `Enabling GitHub Connect for ${who} is not finished.`,
  }[c.state] || "GitHub Connect is not enabled.";
}

// load reads the connections and shows the active one (or the Enable
// form) as the server has it. It leaves messages alone: callers decide.
async function load() {
  const [list, catalog, defaults] = await Promise.all([api("GET", "/v1/connections?pageSize=100"), api("GET", "/v1/features"), api("GET", "/v1/serverDefaults"), webConfig()]);
  state.features = catalog.features || [];
  applyServerDefaults(defaults);
  const conns = list.connections || [];
  // A server has one live connection; one from before that rule may have
  // others beside it. The newest is shown (the registry gave it the
  // server's slot), the others listed to be disabled.
  const live = conns.filter((c) => ACTIVE.includes(c.state));
  const active = live[0] || null;
  const latest = active || conns[0];
  state.conn = active;
  state.latest = latest || null;
  fillConnectionText(latest);
  await renderAppsLeft();
  renderOthers(live.slice(1));
  const withOthers = (ids) => (live.length > 1 ? [...ids, "others"] : ids);
  switch (active && active.state) {
    case STATE("CONNECTED"):
      await renderEnabled(active);
      show(withOthers(["enabled", "timeline-section"]));
      break;
    case STATE("DISCONNECTING"):
      renderDisconnecting(active);
      show(withOthers(["disconnecting", "timeline-section"]));
      break;
    case STATE("PENDING"):
      renderPending(active);
      show(withOthers(["pending", "timeline-section"]));
      break;
    default:
      renderDisabled();
      show(latest ? ["disabled", "timeline-section"] : ["disabled"]);
  }
  if ($("#disabled").hidden) {
    // The Enable form is hidden: what it held is no longer needed.
    $("#enable-form").reset();
    clearErrors($("#enable-form"));
  }
  // The timeline is timeline.js's: every connection's changes and the
  // features'.
  if (latest) await renderTimeline(conns);
  applyRole();
}

// reloadAfterFailure shows the server's truth after an action failed; a
// failure to read it is shown by api().
async function reloadAfterFailure() {
  if (!state.token && !state.session) return; // signed out: nothing to read
  try { await load(); } catch { /* shown */ }
}

// focusSection moves focus to the heading of the section now shown, after
// an action replaced the one that had focus.
function focusSection() {
  const h = document.querySelector("main > section:not([hidden]) h2[tabindex]");
  if (h) h.focus();
}

// failureText is what the page says about a failed action.
function failureText(e) {
  if (!(e instanceof APIError)) return "";
  return e.message.replace(/[.;]?\s*$/, ".");
}

function renderDisabled() {
  const list = $("#want-list");
  if (list.children.length === state.features.length) return; // keep the administrator's choices
  list.replaceChildren();
  for (const f of state.features) {
    const id = "want-" + featureName(f.feature);
    const div = document.createElement("div");
    div.className = "want";
    const box = Object.assign(document.createElement("input"), { type: "checkbox", id, checked: true, value: f.feature });
    const label = Object.assign(document.createElement("label"), { htmlFor: id });
    label.textContent = `${f.title} (needs ${perms(f.permissions)})`;
    div.append(box, label);
    list.append(div);
  }
}

function renderPending(c) {
  const what = $("#pending-what");
  if (c.app) {
    what.textContent = `The GitHub App ${c.app.slug} was created on GitHub.com for ${c.account.login} and waits to be installed there.`;
    $("#continue-hint").textContent = `Continue on GitHub.com installs the App on ${c.account.login}; GitHub.com then sends you back here.`;
  } else {
    what.textContent = `The GitHub App for ${c.account.login} has not been created on GitHub.com yet.`;
    $("#continue-hint").textContent = `Continue on GitHub.com creates the App, with the permissions every feature needs, and installs it on ${c.account.login}; GitHub.com then sends you back here.`;
  }
  renderRecord($("#pending .record"), c);
  $("#continue-btn").onclick = () => act($("#continue-btn"), () => startManifest(c.id, {}));
  $("#cancel-btn").onclick = () => cancelPending(c, $("#cancel-btn"));
}

// cancelPending abandons an unfinished enabling: the registry's disconnect
// steps, from PENDING (key deleted, installation removed if any).
function cancelPending(c, btn) {
  return act(btn, async () => {
    try {
      // Only the PENDING connection this page shows: one another admin
      // finished meanwhile is left alone (409).
      await api("POST", `/v1/connections/${c.id}:disconnect`, { reason: "enabling cancelled", etag: c.etag });
    } catch (e) {
      if (await staleView(e, "Not cancelled")) return;
      if (e instanceof APIError) e.message = `Cancelling did not finish: ${failureText(e)}`;
      throw e;
    }
    await load();
    say(c.app
      ? `Enabling was cancelled. The GitHub App ${c.app.slug} is still on GitHub.com: delete it there.`
      : "Enabling was cancelled. You can enable GitHub Connect again.");
    focusSection();
  });
}

// The steps of a disconnect as the registry records them, in order.
const DISCONNECT_STEPS = [
  ["features_off", () => "Every GitHub Connect feature was switched off"],
  ["tokens_revoked", () => "The GitHub.com tokens issued for this connection were revoked"],
  ["installation_removed", (c) => `The GitHub App's installation was removed from ${c.account.login}`],
  ["key_deleted", () => "The App's private key was deleted from Vault"],
];

function renderDisconnecting(c) {
  const done = c.disconnectSteps || [];
  const ol = $("#disconnect-steps");
  ol.replaceChildren();
  for (const [step, words] of DISCONNECT_STEPS) {
    const li = document.createElement("li");
    li.className = done.includes(step) ? "done" : "todo";
    li.textContent = `${words(c)}: ${done.includes(step) ? "done" : "not done yet"}`;
    ol.append(li);
  }
  renderRecord($("#disconnecting .record"), c);
  $("#retry-btn").onclick = () => disconnect(c, "retried from the admin page", $("#retry-btn"));
}

// renderOthers lists the live connections beyond the one shown, each with
// a button to disable it (a DISCONNECTING one's resumes its disconnect).
function renderOthers(others) {
  const ul = $("#others-list");
  ul.replaceChildren();
  for (const c of others) {
    const li = document.createElement("li");
    li.dataset.connection = c.id;
    const what = document.createElement("span");
    const created = new Date(c.createTime).toLocaleString(undefined, { timeZoneName: "short" });
    what.textContent = `${c.account.login} (${short(c.account.kind).toLowerCase()}): ${STATE_WORDS[short(c.state)] || short(c.state)}${c.app ? `, App ${c.app.slug}` : ""}, created ${created}, connection ${c.id}`;
    const btn = Object.assign(document.createElement("button"), { type: "button", className: "danger" });
    btn.textContent = `Disable ${c.account.login}`;
    btn.onclick = () => askToDisable(c, "disabled from the admin page (one connection per server)", btn);
    li.append(what, btn);
    ul.append(li);
  }
}

// askToDisable asks in the confirmation dialog, which names c's account
// while it is open, before disabling c from btn.
function askToDisable(c, reason, btn) {
  const dialog = $("#confirm");
  fillConnectionText(c, dialog);
  dialog.returnValue = "";
  dialog.onclose = () => {
    fillConnectionText(state.latest, dialog);
    if (dialog.returnValue === "confirm") disconnect(c, reason, btn);
  };
  dialog.showModal();
}

// act runs an action started by btn; a failure is reported and the page
// reloaded, and focus stays in the page.
async function act(btn, fn) {
  banner("");
  say("");
  btn.disabled = true;
  try {
    await fn();
  } catch (e) {
    if (e instanceof APIError) banner(failureText(e));
    await reloadAfterFailure();
    focusSection();
  } finally {
    btn.disabled = false;
    // Redrawing the page (or disabling the button) lost the focus: it
    // goes back to the button pressed, unless the action moved it.
    if (!document.activeElement || document.activeElement === document.body) btn.focus();
  }
}

function perms(p) {
  return Object.entries(p || {}).sort().map(([k, v]) => `${k}:${v}`).join(", ") || "nothing";
}

// inputOf is the form control an error element describes.
const inputOf = (el) => document.getElementById(el.id.replace(/-error$/, ""));

function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) setFieldError(inputOf(e), e, "");
}

function showFieldErrors(form, violations) {
  let first = null;
  const formError = form.querySelector('.field-error[data-field="form"]');
  for (const v of violations) {
    const el = form.querySelector(`.field-error[data-field="${v.field}"]`) || formError;
    const text = el.hidden ? v.description : `${el.textContent} ${v.description}`;
    setFieldError(inputOf(el), el, text);
    if (!first) first = inputOf(el);
  }
  if (first) first.focus();
}

// applyServerDefaults shows the server's own hostname and version in the
// Enable form, read-only: they come from the server's configuration, as on
// GHES, and the admin only chooses the account. A license the server has
// need not be pasted.
function applyServerDefaults(d) {
  const form = $("#enable-form");
  form.serverHostname.defaultValue = d.serverHostname || "";
  form.serverVersion.defaultValue = d.serverVersion || "";
  const lic = d.license;
  form.license.required = !lic;
  $("#license-default").hidden = !lic;
  if (lic) {
    $("#license-default-text").textContent = `${lic.customerName}, ${lic.seats || 0} seats, SHA-256 ${lic.sha256.slice(0, 12)}…`;
  }
}

async function enable(ev) {
  ev.preventDefault();
  const form = ev.target;
  clearErrors(form);
  banner("");
  say("");
  const btn = $("#enable-btn");
  btn.disabled = true;
  try {
    // The App asks for what the chosen features need together, as the
    // feature gate adds their permissions up (none chosen: the registry's
    // default, every feature's).
    const chosen = [...form.querySelectorAll("#want-list input:checked")].map((box) => ["chosen", box.value]);
    const wanted = chosen.length ? (await api("GET", "/v1/features?" + new URLSearchParams(chosen))).chosenPermissions || {} : {};
    const created = await api("POST", "/v1/connections", {
      requestId: "ui-" + crypto.randomUUID(),
      license: form.license.value.trim(),
      account: { kind: form.accountKind.value, login: form.accountLogin.value.trim() },
    });
    await startManifest(created.connection.id, wanted);
  } catch (err) {
    if (!(err instanceof APIError) || err.status === 401) return;
    // A refused create changed nothing, but the connection exists when a
    // later step failed: show what the server has.
    await reloadAfterFailure();
    if (err.isLiveRefusal()) {
      // Another admin connected the server meanwhile: one connection per
      // server. The page now shows theirs.
      banner(`Not enabled: ${failureText(err)} The page shows that connection now.`);
      focusSection();
    } else if ($("#disabled").hidden) {
      banner("Enabling GitHub Connect did not finish: " + failureText(err));
      focusSection();
    } else {
      const violations = err.fieldViolations();
      showFieldErrors(form, violations.length ? violations : [{ field: "form", description: failureText(err) }]);
    }
  } finally {
    btn.disabled = false;
  }
}

// startManifest sends the browser to GitHub.com with the App manifest; it
// comes back through the gateway's /connect/callback and /connect/setup.
async function startManifest(id, wanted) {
  const start = await api("POST", `/v1/connections/${id}:startAppManifest`, { callbackUrl: location.origin + "/connect/callback", permissions: wanted });
  if (start.installUrl) {
    location.assign(start.installUrl);
    return;
  }
  const f = Object.assign(document.createElement("form"), { method: "POST", action: start.postUrl });
  f.append(Object.assign(document.createElement("input"), { type: "hidden", name: "manifest", value: start.manifest }));
  document.body.append(f);
  f.submit();
}

function renderRecord(dl, c) {
  const rows = [
    ["State", short(c.state)],
    ["GitHub.com account", `${c.account.login} (${short(c.account.kind).toLowerCase()}${c.account.id && c.account.id !== "0" ? ", id " + c.account.id : ""})`],
    ["Server", `${c.serverHostname}, version ${c.serverVersion}`],
    ["Customer", c.license && c.license.customerName],
    ["License SHA-256", c.license && c.license.sha256],
    ["License public key", c.license && c.license.publicKey],
    ["GitHub App", c.app ? `${c.app.slug} (id ${c.app.appId})` : "—"],
    ["Installation", c.installationId && c.installationId !== "0" ? c.installationId : "—"],
    // A connected record shows its key in a section of its own (renderKey).
    ...(c.state === STATE("CONNECTED") ? [] : [["Key in Vault", c.transitKey ? `${c.transitKey.mount}/${c.transitKey.name}, versions ${(c.transitKey.versions || []).join(", ")}` : "—"]]),
    ["Connected", c.connectTime ? new Date(c.connectTime).toLocaleString(undefined, { timeZoneName: "short" }) : "—"],
  ];
  fillRecord(dl, rows);
}

const when = (t) => new Date(t).toLocaleString(undefined, { timeZoneName: "short" });

function fillRecord(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v === undefined || v === "" ? "—" : String(v);
    if (k === "State") dd.className = "state";
    if (k === "Key rotation") { dd.className = "notice"; dd.id = "key-notice"; }
    dl.append(dt, dd);
  }
}

// settingsFor reads the feature settings of record c. The feature gate
// follows the registry: right after a change to the record (Refresh
// permissions, say) it may not have caught up, so this reads again, for
// up to two seconds, until the settings follow c (connectionEtag).
async function settingsFor(c) {
  for (let tries = 0; ; tries++) {
    const settings = (await api("GET", `/v1/connections/${c.id}/features`)).settings;
    if (settings.connectionEtag === c.etag || tries >= 20) return settings;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// renderRepositories shows which of the account's repositories the App's
// installation covers, as GitHub.com says now: all, or those the admin
// selected when installing (tokens reach these and no others).
async function renderRepositories(c) {
  const dl = $("#repos-record");
  // Asked once per connection shown (and again after Refresh
  // permissions), not on every redraw.
  if (dl.dataset.connection === c.id) return;
  dl.dataset.connection = c.id;
  fillRecord(dl, [["Repositories covered", "asking GitHub.com…"]]);
  let text;
  try {
    const r = await api("GET", `/v1/connections/${c.id}/repositories`);
    const names = r.repositories || [];
    const more = (r.totalCount || 0) > names.length ? ` and ${r.totalCount - names.length} more` : "";
    text = r.repositorySelection === "all"
      ? `all of ${c.account.login}'s repositories (${r.totalCount || 0} now)`
      : `${r.totalCount || 0} selected when installing: ${names.join(", ")}${more}`;
  } catch (err) {
    text = `unknown: ${failureText(err)}`;
  }
  fillRecord(dl, [["Repositories covered", text]]);
}

// renderKey shows the App's key: its versions in Vault, what the registry
// found following it, when the broker last signed with it and its last
// signing error; and, once a new version signs while older ones remain,
// how to finish the rotation.
async function renderKey(c) {
  const k = c.transitKey || {};
  const versions = k.versions || [];
  let signing = null;
  try {
    signing = await api("GET", `/v1/connections/${c.id}/signingStatus`);
  } catch { /* the broker has not signed for this connection yet, or is down: said below */ }
  fillRecord($("#key-record"), [
    ["Key in Vault", `${k.mount}/${k.name}, versions ${versions.join(", ")}`],
    ...(k.notice ? [["Key rotation", k.notice]] : []),
    ["Key last signed", signing && signing.lastSignTime ? `${when(signing.lastSignTime)}, with version ${signing.currentVersion}` : signing ? "not yet" : "unknown: the token broker did not answer"],
    ["Last signing error", signing ? signing.lastError || "none" : "—"],
  ]);
  const prompt = $("#key-prompt");
  const newest = versions[versions.length - 1];
  prompt.hidden = !(versions.length > 1 && !k.pendingVersion);
  if (!prompt.hidden) {
    const old = versions.slice(0, -1).join(", ");
    prompt.replaceChildren(
      `Key version ${newest} signs now. Finish the rotation: delete the old key in `,
      Object.assign(document.createElement("a"), { href: appSettingsURL(c) || "#", textContent: "the App's settings on GitHub.com" }),
      `, then retire version ${old} in Vault (`,
      Object.assign(document.createElement("a"), { href: "/key-rotation.html", textContent: "runbook steps 4 and 5" }),
      ").");
  }
}

// HEALTH_MARKS are each health level's word and mark: the colour
// (app.css) is never the only signal.
const HEALTH_MARKS = { ok: ["OK", "✓"], problem: ["Problem", "✗"], unknown: ["Unknown", "?"], off: ["Off", "–"], checking: ["Checking", "…"] };

// HEALTH_LINES are the panel's lines, in order.
const HEALTH_LINES = ["Vault", "GitHub.com", "Signing", "Unified contributions", "Dependabot alerts", "License sync", "Server statistics"];

// healthLine is one line of the health panel: what, its level and why.
function healthLine(what, level, text) {
  const li = document.createElement("li");
  li.className = level;
  li.dataset.health = what;
  const [word, mark] = HEALTH_MARKS[level];
  const m = Object.assign(document.createElement("span"), { className: "mark", textContent: mark });
  m.setAttribute("aria-hidden", "true");
  li.append(m, Object.assign(document.createElement("strong"), { textContent: what }), ": ",
    Object.assign(document.createElement("span"), { className: "word", textContent: word }), ` — ${text}`);
  return li;
}

// jobHealth is a scheduled job's line: off, running, failing or its last
// complete run.
function jobHealth(what, job, lastOk) {
  if (!job.state || job.state.endsWith("_OFF") || job.state.endsWith("_NOT_APPLICABLE")) return healthLine(what, "off", (job.message || "not running: the feature is off").replace(/^off: /, ""));
  if (job.lastError) return healthLine(what, "problem", `last run did not complete: ${job.lastError}`);
  if (job.state.endsWith("_RUNNING") && !lastOk) return healthLine(what, "unknown", "first run under way");
  return lastOk ? healthLine(what, "ok", `last complete run ${when(lastOk)}`) : healthLine(what, "unknown", "no complete run yet");
}

// statusRequests asks the feature gate once for each feature's status;
// the Health panel and the features' own records read the same answers.
function statusRequests(c) {
  const get = (path) => api("GET", path).then((value) => ({ value }), (err) => ({ err }));
  return {
    contributions: get(`/v1/connections/${c.id}/contributions/status`),
    advisories: get("/v1/advisories/sync"),
    license: get("/v1/license-sync/status"),
    stats: get("/v1/server-statistics/status"),
  };
}

// answer is a statusRequests answer, or its failure thrown.
async function answer(request) {
  const r = await request;
  if (r.err) throw r.err;
  return r.value;
}

// renderHealth fills the health panel: Vault and GitHub.com as the token
// broker finds them now, its last sign for the connection, and each
// feature's last run, as the feature gate says.
async function renderHealth(c, statuses = statusRequests(c)) {
  const ul = $("#health");
  // Its lines from the start, so the page below does not move when the
  // answers come.
  if (!ul.children.length) ul.replaceChildren(...HEALTH_LINES.map((what) => healthLine(what, "checking", "asking the services…")));
  let h = null, why = "";
  try {
    h = await api("GET", `/v1/connections/${c.id}/health`);
  } catch (err) {
    why = failureText(err);
  }
  const lines = [];
  if (!h) {
    lines.push(healthLine("Vault", "unknown", `the token broker did not answer: ${why}`));
    lines.push(healthLine("GitHub.com", "unknown", `the token broker did not answer: ${why}`));
    lines.push(healthLine("Signing", "unknown", "the token broker did not answer"));
  } else {
    const v = h.vault || {};
    lines.push(v.sealed ? healthLine("Vault", "problem", "sealed: nothing can be signed until an operator unseals it")
      : v.reachable ? healthLine("Vault", "ok", "reachable and unsealed")
        : healthLine("Vault", "problem", `unreachable: ${v.error || "no answer"}`));
    const g = h.github || {};
    const rate = g.rateLimitTime ? `${g.rateLimitRemaining} of ${g.rateLimitLimit} requests left this hour (as of ${when(g.rateLimitTime)})` : "no rate limit seen yet";
    const low = g.rateLimitTime && Number(g.rateLimitLimit) > 0 && Number(g.rateLimitRemaining) < Number(g.rateLimitLimit) / 10;
    lines.push(!g.reachable ? healthLine("GitHub.com", "problem", g.statusCode ? `failing: ${g.error}` : `unreachable: ${g.error || "no answer"}`)
      : low ? healthLine("GitHub.com", "problem", `reachable, but the rate limit is nearly spent: ${rate}`)
        : healthLine("GitHub.com", "ok", `reachable; ${rate}`));
    lines.push(h.lastSignError ? healthLine("Signing", "problem", `last error: ${h.lastSignError}${h.lastSignTime ? `; last successful sign ${when(h.lastSignTime)}` : ""}`)
      : h.lastSignTime ? healthLine("Signing", "ok", `last successful sign ${when(h.lastSignTime)}`)
        : healthLine("Signing", "unknown", "no sign since the token broker started"));
  }
  const feature = async (what, request, line) => {
    try {
      lines.push(line(await answer(request)));
    } catch (err) {
      lines.push(healthLine(what, "unknown", `the feature gate did not answer: ${failureText(err)}`));
    }
  };
  await feature("Unified contributions", statuses.contributions, (r) => {
    const st = r.connection || {};
    if (!st.lastUploadTime) return healthLine("Unified contributions", st.optedInUsers ? "unknown" : "off", st.message || "nothing sent yet");
    return st.lastUploadOk ? healthLine("Unified contributions", "ok", `last upload ${when(st.lastUploadTime)}`)
      : healthLine("Unified contributions", "problem", `last upload failed ${when(st.lastUploadTime)}: ${st.lastError || st.message}`);
  });
  await feature("Dependabot alerts", statuses.advisories, (r) => jobHealth("Dependabot alerts", r.status || {}, (r.status || {}).lastSuccessTime));
  await feature("License sync", statuses.license, (r) => {
    const job = (r.status || {}).job || {};
    return jobHealth("License sync", job, job.lastError ? "" : job.lastEndTime);
  });
  await feature("Server statistics", statuses.stats, (r) => {
    const job = (r.status || {}).job || {};
    return jobHealth("Server statistics", job, job.lastError ? "" : job.lastEndTime);
  });
  ul.replaceChildren(...lines);
  $("#health-btn").onclick = () => act($("#health-btn"), () => renderHealth(c));
}

async function renderEnabled(c) {
  renderRecord($("#enabled .record"), c);
  const statuses = statusRequests(c);
  renderHealth(c, statuses);
  await renderKey(c);
  // GitHub.com's answer fills its row when it comes: the page does not
  // wait on GitHub.com to show the connection.
  renderRepositories(c);
  const settings = await settingsFor(c);
  const ul = $("#features");
  if (ul.dataset.connection !== c.id) buildFeatures(ul, c);
  applySettings(settings);
  applyPermissions(c, settings);
  await renderContributions(statuses);
  await renderAdvisorySync(statuses);
  await renderActions();
  await renderJobs(statuses);
  $("#refresh-perms-btn").onclick = () => act($("#refresh-perms-btn"), async () => {
    delete $("#repos-record").dataset.connection;
    const out = await api("POST", `/v1/connections/${c.id}:refreshAppPermissions`, {});
    await load();
    const now = out.connection.app.permissions || {};
    // What changed is the registry's to say (permissionsGained, -Lost).
    const same = !Object.keys(out.permissionsGained || {}).length && !Object.keys(out.permissionsLost || {}).length;
    $("#features-status").textContent = same
      ? `Permissions refreshed: GitHub.com grants the App the same permissions as before (${perms(now)}).`
      : `Permissions refreshed: the App gained ${perms(out.permissionsGained)} and lost ${perms(out.permissionsLost)}; it may now use ${perms(now)}.`;
  });
  $("#disable-btn").onclick = () => askToDisable(c, "disabled from the admin page", $("#disable-btn"));
}

// renderContributions shows, under unified contributions, how sending
// to GitHub.com goes, as the feature gate words it.
async function renderContributions(statuses) {
  const dl = $("#contrib-status");
  if (!dl) return;
  let st;
  try {
    st = (await answer(statuses.contributions)).connection || {};
  } catch (err) {
    fillRecord(dl, [["Sending", `unknown: ${failureText(err)}`]]);
    return;
  }
  fillRecord(dl, [
    ["Users opted in", st.optedInUsers || 0],
    ["Last upload", st.lastUploadTime ? `${when(st.lastUploadTime)}: ${st.lastUploadOk ? "ok" : "failed"}` : "none yet"],
    ["Waiting to be sent", `${st.outboxRows || 0} (${st.message})`],
    ["Last error", st.lastError ? `${st.lastError} (${when(st.lastFailureTime)})` : "none"],
  ]);
}

// renderAdvisorySync shows, under Dependabot alerts, how the download
// of vulnerability data goes, as the feature gate words it.
async function renderAdvisorySync(statuses) {
  const dl = $("#advisory-status");
  if (!dl) return;
  let st;
  try {
    st = (await answer(statuses.advisories)).status || {};
  } catch (err) {
    fillRecord(dl, [["Vulnerability data", `unknown: ${failureText(err)}`]]);
    return;
  }
  const lastRun = !st.lastEndTime || st.state === "ADVISORY_SYNC_STATE_RUNNING"
    ? (st.state === "ADVISORY_SYNC_STATE_RUNNING" ? "running now" : "none yet")
    : `${when(st.lastEndTime)}: ${st.lastError ? "did not complete" : `ok, ${st.fetched || 0} received, ${st.changed || 0} new or changed`}`;
  fillRecord(dl, [
    ["Vulnerability data", st.message],
    ["Advisories held", st.advisories || 0],
    ["Last run", lastRun],
    ["Last complete sync", st.lastSuccessTime ? when(st.lastSuccessTime) : "none yet"],
    ["Next run", st.nextRunTime ? when(st.nextRunTime) : "none while the sync is off"],
    ["Last error", st.lastError || "none"],
  ]);
}

// jobRows are the rows every scheduled upload shows: its state in words,
// the last run and its result, the next run and the last error.
function jobRows(job) {
  const running = job.state === "JOB_STATE_RUNNING";
  const lastRun = running ? "running now" : !job.lastEndTime ? "none yet"
    : `${when(job.lastEndTime)}: ${job.lastError ? "did not complete" : job.lastResult || "ok"}`;
  return [
    ["Sending", job.message],
    ["Last run", lastRun],
    ["Next run", job.nextRunTime ? when(job.nextRunTime) : "none while it does not run"],
    ["Last error", job.lastError || "none"],
  ];
}

// renderJobs shows, under license sync and server statistics, how their
// uploads go and what GitHub.com read back, as the feature gate words it.
async function renderJobs(statuses) {
  const lic = $("#license-status");
  if (lic) {
    try {
      const st = (await answer(statuses.license)).status || {};
      const rows = jobRows(st.job || {});
      rows.splice(1, 0, ["Licensed users on the server", st.licensedUsers || 0]);
      rows.push(["GitHub.com's count", st.githubSyncTime
        ? `${st.seatsConsumed || 0} of ${st.seatsPurchased || 0} seats consumed; its last sync of this server ${when(st.githubSyncTime)}: ${st.githubSyncStatus}`
        : "not read yet"]);
      fillRecord(lic, rows);
    } catch (err) {
      fillRecord(lic, [["Sending", `unknown: ${failureText(err)}`]]);
    }
  }
  const stats = $("#stats-status");
  if (stats) {
    try {
      const st = (await answer(statuses.stats)).status || {};
      const rows = jobRows(st.job || {});
      rows.splice(1, 0, ["Last counts from the server", st.lastReportTime ? when(st.lastReportTime) : "none yet: nothing to send"]);
      rows.push(["Held on GitHub.com", st.githubLastDate ? `GitHub.com holds ${st.githubDays} of this server's days, the newest ${st.githubLastDate}` : "not read yet"]);
      fillRecord(stats, rows);
    } catch (err) {
      fillRecord(stats, [["Sending", `unknown: ${failureText(err)}`]]);
    }
  }
}

// buildActionsPolicy makes the form of the enterprise's policy for
// GitHub.com actions, as GHES words it: all actions, or selected ones
// (GitHub's, verified creators', and patterns); "!" patterns block.
function buildActionsPolicy() {
  const form = Object.assign(document.createElement("form"), { id: "actions-policy", className: "policy", noValidate: true });
  form.setAttribute("aria-label", "Actions policy");
  const set = document.createElement("fieldset");
  const legend = Object.assign(document.createElement("legend"), { textContent: "Which GitHub.com actions runners may use" });
  const row = (input, text, sub) => {
    const div = Object.assign(document.createElement("div"), { className: sub ? "row sub" : "row" });
    const label = Object.assign(document.createElement("label"), { htmlFor: input.id, textContent: text });
    div.append(input, label);
    return div;
  };
  const all = Object.assign(document.createElement("input"), { type: "radio", name: "actions-allowed", id: "actions-all", value: "ACTIONS_ALLOWED_ALL" });
  const selected = Object.assign(document.createElement("input"), { type: "radio", name: "actions-allowed", id: "actions-selected", value: "ACTIONS_ALLOWED_SELECTED" });
  const owned = Object.assign(document.createElement("input"), { type: "checkbox", id: "actions-github-owned" });
  const verified = Object.assign(document.createElement("input"), { type: "checkbox", id: "actions-verified" });
  const patternsLabel = Object.assign(document.createElement("label"), { htmlFor: "actions-patterns", textContent: "Actions allowed (with selected actions) and blocked, one per line" });
  const patterns = Object.assign(document.createElement("textarea"), { id: "actions-patterns", rows: 4, spellcheck: false });
  const hint = Object.assign(document.createElement("p"), { className: "hint", id: "actions-patterns-hint",
    textContent: "For example octo-org/*, octo-org/deploy@v2 or octo-org/lint@*. Start a line with ! to block an action, even when all actions are allowed; a block wins." });
  patterns.setAttribute("aria-describedby", hint.id);
  const save = Object.assign(document.createElement("button"), { type: "submit", id: "actions-policy-save", textContent: "Save the actions policy" });
  const saved = Object.assign(document.createElement("p"), { className: "saved", id: "actions-policy-saved" });
  saved.setAttribute("role", "status");
  const err = Object.assign(document.createElement("p"), { className: "field-error", hidden: true, id: "actions-policy-error" });
  err.setAttribute("role", "alert");
  const meta = Object.assign(document.createElement("p"), { className: "hint", id: "actions-policy-meta" });
  const sync = () => { owned.disabled = verified.disabled = !selected.checked; };
  for (const r of [all, selected]) r.addEventListener("change", sync);
  form.addEventListener("input", () => { form.dataset.dirty = "1"; saved.textContent = ""; });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setFieldError(patterns, err, "");
    saved.textContent = "";
    save.disabled = true;
    try {
      const body = { policy: {
        allowed: selected.checked ? "ACTIONS_ALLOWED_SELECTED" : "ACTIONS_ALLOWED_ALL",
        githubOwned: selected.checked && owned.checked, verifiedCreators: selected.checked && verified.checked,
        patterns: patterns.value.split("\n").map((x) => x.trim()).filter((x) => x),
      }, etag: form.dataset.etag || "" };
      const out = await api("PUT", "/v1/actions/policy", body);
      delete form.dataset.dirty;
      fillActionsPolicy(out.policy);
      saved.textContent = "Actions policy saved.";
    } catch (e) {
      if (!(e instanceof APIError)) throw e;
      setFieldError(patterns, err, failureText(e));
    } finally {
      save.disabled = false;
    }
  });
  set.append(legend, row(all, "All actions"), row(selected, "Selected actions only:"), row(owned, "actions created by GitHub", true),
    row(verified, "actions of verified creators on GitHub.com", true), patternsLabel, patterns, hint);
  form.append(set, save, saved, err, meta);
  sync();
  return form;
}

// fillActionsPolicy shows the policy as the feature gate holds it.
function fillActionsPolicy(p) {
  const form = $("#actions-policy");
  form.dataset.etag = p.etag || "";
  const selected = p.allowed === "ACTIONS_ALLOWED_SELECTED";
  $("#actions-all").checked = !selected;
  $("#actions-selected").checked = selected;
  $("#actions-github-owned").checked = !!p.githubOwned;
  $("#actions-verified").checked = !!p.verifiedCreators;
  $("#actions-github-owned").disabled = $("#actions-verified").disabled = !selected;
  $("#actions-patterns").value = (p.patterns || []).join("\n");
  $("#actions-policy-meta").textContent = p.updateTime ? `Last changed by ${p.updateUser} ${when(p.updateTime)}.` : "GHES's default: every public action allowed.";
}

// renderActions shows, under GitHub.com actions, how serving runners goes
// and the policy (unless the administrator is editing it).
async function renderActions() {
  const dl = $("#actions-status");
  if (!dl) return;
  try {
    const st = (await api("GET", "/v1/actions/status")).status || {};
    const mib = (n) => `${(Number(n || 0) / 1048576).toFixed(1)} MiB`;
    fillRecord(dl, [
      ["Runners", st.message],
      ["Downloads from GitHub.com", `${st.downloads || 0} (${mib(st.downloadedBytes)})`],
      ["Last download", st.lastDownload ? `${st.lastDownload}, ${when(st.lastDownloadTime)}` : "none yet"],
      ["Last refused", st.lastRefusal ? `${st.lastRefusal} (${when(st.lastRefusalTime)})` : "none"],
      ["Last error", st.lastError ? `${st.lastError} (${when(st.lastErrorTime)})` : "none"],
      ["Cache of this replica", `${st.cachedArchives || 0} tarballs, ${mib(st.cacheBytes)} of ${mib(st.cacheLimitBytes)}; ${st.cacheHits || 0} served from it, ${st.cacheMisses || 0} not`],
    ]);
  } catch (err) {
    fillRecord(dl, [["Runners", `unknown: ${failureText(err)}`]]);
  }
  const form = $("#actions-policy");
  if (form.dataset.dirty || form.contains(document.activeElement)) return;
  try {
    fillActionsPolicy((await api("GET", "/v1/actions/policy")).policy || {});
  } catch (err) {
    $("#actions-policy-meta").textContent = `The policy could not be read: ${failureText(err)}`;
  }
}

// What each App permission lets the App do, in words.
const PERMISSION_WORDS = {
  contents: "read repository contents", issues: "read issues", metadata: "read repository metadata",
  vulnerability_alerts: "read Dependabot alerts", members: "read organization members",
  organization_administration: "read organization administration",
};

// applyPermissions shows up front the features the App cannot serve, as
// the feature gate derives them (each setting's missingPermissions): one
// that is off cannot be switched on; one that is on does not work, says
// so, and stays switchable, so it can be turned off.
function applyPermissions(c, settings) {
  for (const li of $("#features").children) {
    const info = state.features.find((f) => f.feature === li.dataset.feature);
    const setting = settings.features.find((x) => x.feature === li.dataset.feature) || {};
    const missing = Object.entries(setting.missingPermissions || {}).sort();
    const box = li.querySelector(".toggle");
    const note = li.querySelector(".missing");
    box.disabled = missing.length > 0 && !setting.enabled;
    note.hidden = missing.length === 0;
    li.classList.toggle("broken", missing.length > 0 && !!setting.enabled);
    if (missing.length === 0) {
      note.replaceChildren();
      box.removeAttribute("aria-describedby");
      continue;
    }
    const what = missing.map(([p, l]) => `${PERMISSION_WORDS[p] || p} (${p}: ${l})`).join(" and ");
    const settingsURL = appSettingsURL(c);
    const where = settingsURL
      ? Object.assign(document.createElement("a"), { href: settingsURL, textContent: "the App's settings on GitHub.com" })
      : document.createTextNode("the App's settings on GitHub.com");
    const head = setting.enabled
      ? Object.assign(document.createElement("strong"), { textContent: "On, but not working: " })
      : document.createTextNode("");
    const why = setting.enabled
      ? `the GitHub App may no longer ${what}, which ${info.title} needs. To restore it: in `
      : `The GitHub App may not ${what}, which ${info.title} needs. To add it: in `;
    note.replaceChildren(head, why, where,
      `, add the permission; on ${c.account.login}, accept the App's new permissions on its installation; then press Refresh permissions below.` +
      (setting.enabled ? " Or switch the feature off." : ""));
    box.setAttribute("aria-describedby", note.id);
  }
}

// buildFeatures makes a toggle per feature once per connection; later
// reads of the settings only update them, so focus stays where it is.
function buildFeatures(ul, c) {
  ul.replaceChildren();
  ul.dataset.connection = c.id;
  for (const info of state.features) {
    const name = featureName(info.feature);
    const li = document.createElement("li");
    li.id = "feature-" + name;
    li.dataset.feature = info.feature;
    const row = document.createElement("div");
    row.className = "row";
    const box = Object.assign(document.createElement("input"), { type: "checkbox", id: "toggle-" + name, className: "toggle" });
    const label = Object.assign(document.createElement("label"), { htmlFor: box.id });
    label.textContent = info.title;
    row.append(box, label);
    const desc = Object.assign(document.createElement("p"), { className: "hint" });
    desc.textContent = info.description;
    const needs = Object.assign(document.createElement("p"), { className: "needs" });
    needs.textContent = `Needs App permissions ${perms(info.permissions)}` + ({ CONSENT_OPT_IN: "; each user links a GitHub.com account and opts in", CONSENT_LINK_FOR_PRIVATE: "; private results need a linked account" }[info.consent] || "");
    const missingNote = Object.assign(document.createElement("p"), { className: "missing notice-box", hidden: true, id: "missing-" + name });
    // "Saved" shows by the feature it confirms, not below the whole list.
    const saved = Object.assign(document.createElement("p"), { className: "saved", id: "saved-" + name });
    saved.setAttribute("role", "status");
    const err = Object.assign(document.createElement("p"), { className: "field-error", hidden: true, id: "error-" + name });
    err.setAttribute("role", "alert");
    li.append(row, desc, needs, missingNote);
    const controls = [box];
    if (info.feature === "FEATURE_UNIFIED_SEARCH") {
      const pr = document.createElement("div");
      pr.className = "row";
      const priv = Object.assign(document.createElement("input"), { type: "checkbox", id: "private-" + name, className: "private" });
      const pl = Object.assign(document.createElement("label"), { htmlFor: priv.id });
      pl.textContent = "Include private repositories of " + c.account.login + " for users who link their account";
      const ph = Object.assign(document.createElement("p"), { className: "hint", id: "private-hint-" + name });
      ph.textContent = "A setting of its own: kept while unified search is off, and in effect only while it is on.";
      priv.setAttribute("aria-describedby", ph.id);
      pr.append(priv, pl);
      li.append(pr, ph);
      controls.push(priv);
    }
    if (info.feature === "FEATURE_UNIFIED_CONTRIBUTIONS") {
      const dl = Object.assign(document.createElement("dl"), { className: "record", id: "contrib-status" });
      dl.setAttribute("aria-label", "Unified contributions: how sending goes");
      li.append(dl);
    }
    if (info.feature === "FEATURE_DEPENDABOT_ALERTS") {
      const dl = Object.assign(document.createElement("dl"), { className: "record", id: "advisory-status" });
      dl.setAttribute("aria-label", "Dependabot alerts: how the download of vulnerability data goes");
      li.append(dl);
    }
    if (info.feature === "FEATURE_LICENSE_SYNC") {
      const dl = Object.assign(document.createElement("dl"), { className: "record", id: "license-status" });
      dl.setAttribute("aria-label", "Automatic user license sync: how sending goes");
      li.append(dl);
    }
    if (info.feature === "FEATURE_SERVER_STATISTICS") {
      const dl = Object.assign(document.createElement("dl"), { className: "record", id: "stats-status" });
      dl.setAttribute("aria-label", "Server statistics: how sending goes");
      li.append(dl);
    }
    if (info.feature === "FEATURE_ACTIONS_ACCESS") {
      const dl = Object.assign(document.createElement("dl"), { className: "record", id: "actions-status" });
      dl.setAttribute("aria-label", "GitHub.com actions: how serving runners goes");
      li.append(dl, buildActionsPolicy());
    }
    li.append(saved, err);
    // While a change is being saved the controls take no other: they are
    // not disabled, which would drop the keyboard focus.
    li.addEventListener("click", (ev) => {
      if (li.dataset.busy && controls.includes(ev.target)) ev.preventDefault();
    });
    for (const control of controls) control.addEventListener("change", () => saveFeature(info, li, controls, err));
    ul.append(li);
  }
}

// applySettings shows settings as read from (or returned by) the server.
function applySettings(settings) {
  state.settings = settings;
  for (const li of $("#features").children) {
    const s = settings.features.find((x) => x.feature === li.dataset.feature) || {};
    li.querySelector(".toggle").checked = !!s.enabled;
    const priv = li.querySelector(".private");
    if (priv) priv.checked = !!s.includePrivate;
  }
}

function describeSetting(info, s) {
  let text = `${info.title} is ${s.enabled ? "on" : "off"}`;
  if (info.feature === "FEATURE_UNIFIED_SEARCH") text += `, private repositories ${s.includePrivate ? "included" : "not included"}`;
  return text;
}

async function saveFeature(info, li, controls, err) {
  const [box, priv] = controls;
  const status = li.querySelector(".saved");
  setFieldError(controls, err, "");
  for (const other of $("#features").querySelectorAll(".saved")) other.textContent = "";
  $("#features-status").textContent = "";
  banner("");
  say("");
  const wanted = { feature: info.feature, enabled: box.checked, includePrivate: !!(priv && priv.checked) };
  li.dataset.busy = "1";
  li.setAttribute("aria-busy", "true");
  try {
    const resp = await api("PATCH", `/v1/connections/${state.conn.id}/features`, { etag: state.settings.etag, features: [wanted] });
    applySettings(resp.settings);
    refreshTimeline();
    status.textContent = `Saved: ${describeSetting(info, resp.settings.features.find((x) => x.feature === info.feature) || wanted)}.`;
    // In sight with the control it confirms, wherever the page had
    // scrolled the control to (focus stays on the control).
    status.scrollIntoView({ block: "nearest" });
  } catch (e) {
    const why = e instanceof APIError && e.status === 409
      ? "Not saved: someone else changed the feature settings meanwhile. They are shown as they are now; make your change again if you still want it."
      : "Not saved: " + (failureText(e) || "the gateway could not be reached.");
    const was = state.conn;
    await reloadAfterFailure();
    // The connection itself may have changed while the page was open (a
    // disable from another tab): then the toggles are gone, and the page
    // says what changed where they were.
    const now = state.conn;
    if (was && (!now || now.id !== was.id || now.state !== was.state)) {
      const what = now && now.id === was.id ? `it is ${(STATE_WORDS[short(now.state)] || short(now.state)).toLowerCase()} now` : `GitHub Connect for ${was.account.login} is disabled now`;
      say(`Not saved: ${info.title} was not changed, because someone changed this connection while the page was open; ${what}. The page shows it as it is now.`);
      focusSection();
      return;
    }
    // Shown after the reload, which may have built the list anew.
    const again = document.getElementById(err.id);
    if (again) setFieldError([...again.closest("li").querySelectorAll("input")], again, why);
  } finally {
    delete li.dataset.busy;
    li.removeAttribute("aria-busy");
  }
}

// staleView answers a 409 (the connection changed since the page read it):
// the page shows the connection as it is now and says what changed;
// false for any other failure.
async function staleView(e, what) {
  if (!(e instanceof APIError) || e.status !== 409) return false;
  const now = (/it is ([A-Z]+) now/.exec(e.message) || [])[1];
  await load();
  say(`${what}: someone changed this connection while the page was open${now ? `; it is ${(STATE_WORDS[now] || now).toLowerCase()} now` : ""}. The page shows it as it is now.`);
  focusSection();
  return true;
}

// disconnect runs (or resumes) the disconnect; on failure the page shows
// what the server has then, DISCONNECTING with its steps. A disconnect
// asked from a view of a CONNECTED (or PENDING) connection holds only
// while it is so; a DISCONNECTING one's resumes whatever changed.
function disconnect(c, reason, btn) {
  return act(btn, async () => {
    try {
      await api("POST", `/v1/connections/${c.id}:disconnect`, c.state !== STATE("DISCONNECTING") ? { reason, etag: c.etag } : { reason });
    } catch (e) {
      if (await staleView(e, "Not disabled")) return;
      if (e instanceof APIError) {
        e.message = `Disabling GitHub Connect did not finish: ${failureText(e)} The steps done so far are kept: Retry disconnect resumes from there.`;
      }
      throw e;
    }
    await load();
    say(`GitHub Connect is disabled for ${c.account.login}.`);
    focusSection();
  });
}

async function signIn(ev) {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("ghconnect-token", state.token);
  setFieldError($("#token"), $("#token-error"), "");
  try { await load(); } catch { /* errors are shown */ }
}

// arrive shows the current state, saying so plainly when the page was
// reached again rather than freshly: back from GitHub.com, a replayed
// redirect, Back/Forward, a reload, or the back-forward cache.
async function arrive(again) {
  const q = new URLSearchParams(location.search);
  const nav = performance.getEntriesByType("navigation")[0];
  again = again || (nav && (nav.type === "reload" || nav.type === "back_forward"));
  // A later reload of this page must not repeat what the query said.
  if (location.search) history.replaceState(null, "", "/");
  banner("");
  say("");
  try { await load(); } catch { return; }
  const now = stateSentence(state.conn);
  if (q.has("connected") && state.conn && state.conn.state === STATE("CONNECTED")) {
    say(`GitHub Connect is now enabled for ${state.conn.account.login}.`);
  } else if (q.get("callback") === "cancelled") {
    say(q.get("step") === "install"
      ? `You cancelled the App's installation on GitHub.com, so it was not installed. ${now}`
      : `You cancelled creating the App on GitHub.com, so nothing was created there. ${now}`);
  } else if (q.get("callback") === "stale") {
    say(`That link back from GitHub.com was already used or has expired, so it changed nothing. ${now}`);
  } else if (again || q.has("connected")) {
    say(`Showing the current state: ${now}`);
  }
}

window.addEventListener("DOMContentLoaded", async () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#enable-form").addEventListener("submit", enable);
  $("#signout").addEventListener("click", signOutClicked);
  await readSession();
  if (state.sso && !state.session) { signOut(""); return; }
  if (!state.sso && !state.token) { signOut(""); return; }
  arrive(false);
});

// A page restored from the back-forward cache is as it was left, maybe
// long ago: read the state again.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted && (state.token || state.session)) arrive(true);
});
