// The GitHub Connect admin page: a client of the gateway's REST API only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { token: sessionStorage.getItem("ghconnect-token") || "", features: [] };

class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
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
    resp = await fetch(path, {
      method,
      headers: { "Authorization": "Bearer " + state.token, "Content-Type": "application/json" },
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
    signOut("Your token was not accepted. Sign in again.");
    throw new APIError(401, data);
  }
  if (resp.status === 502 || resp.status === 503 || resp.status === 504) {
    banner("A ghconnect service is unavailable: " + (data.message || resp.statusText));
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

function banner(msg) {
  const b = $("#banner");
  b.textContent = msg;
  b.hidden = !msg;
}

function show(id) {
  for (const s of ["signin", "disabled", "enabled", "history-section"]) $("#" + s).hidden = !id.includes(s);
  $("#signout").hidden = id.includes("signin");
}

function signOut(msg) {
  state.token = "";
  sessionStorage.removeItem("ghconnect-token");
  show(["signin"]);
  const e = $("#token-error");
  e.textContent = msg || "";
  e.hidden = !msg;
  $("#token").focus();
}

const short = (s) => (s || "").replace(/^CONNECTION_STATE_|^ACCOUNT_KIND_|^FEATURE_|^REASON_/, "");
const featureName = (f) => short(f).toLowerCase();

async function load() {
  banner("");
  const [list, catalog] = await Promise.all([api("GET", "/v1/connections?pageSize=100"), api("GET", "/v1/features")]);
  state.features = catalog.features || [];
  const conns = list.connections || [];
  const active = conns.find((c) => ["CONNECTION_STATE_CONNECTED", "CONNECTION_STATE_DISCONNECTING", "CONNECTION_STATE_PENDING"].includes(c.state));
  const shown = active || conns[0];
  if (active && active.state !== "CONNECTION_STATE_PENDING") {
    await renderEnabled(active);
    show(["enabled", "history-section"]);
  } else {
    renderDisabled(active);
    show(shown ? ["disabled", "history-section"] : ["disabled"]);
  }
  if (shown) await renderHistory(shown.id);
}

function renderDisabled(pending) {
  const resume = $("#resume");
  resume.hidden = !(pending && pending.app);
  if (pending && pending.app) {
    $("#resume-account").textContent = pending.account.login;
    $("#resume-btn").onclick = () => startManifest(pending.id, {});
  }
  const list = $("#want-list");
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

function perms(p) {
  return Object.entries(p || {}).sort().map(([k, v]) => `${k}:${v}`).join(", ") || "nothing";
}

function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) { e.hidden = true; e.textContent = ""; }
}

function showFieldErrors(form, err) {
  const violations = err.fieldViolations();
  let first = null;
  for (const v of violations) {
    const el = form.querySelector(`.field-error[data-field="${v.field}"]`) || form.querySelector('.field-error[data-field="form"]');
    el.textContent = v.description;
    el.hidden = false;
    const input = el.previousElementSibling;
    if (!first && input && input.focus) first = input;
  }
  if (!violations.length) {
    const el = form.querySelector('.field-error[data-field="form"]');
    el.textContent = err.message;
    el.hidden = false;
  }
  if (first) first.focus();
}

async function enable(ev) {
  ev.preventDefault();
  const form = ev.target;
  clearErrors(form);
  const btn = $("#enable-btn");
  btn.disabled = true;
  try {
    const wanted = {};
    for (const box of form.querySelectorAll("#want-list input:checked")) {
      const f = state.features.find((x) => x.feature === box.value);
      for (const [k, v] of Object.entries(f.permissions || {})) {
        const rank = { read: 1, write: 2, admin: 3 };
        if (!wanted[k] || rank[v] > rank[wanted[k]]) wanted[k] = v;
      }
    }
    const created = await api("POST", "/v1/connections", {
      requestId: "ui-" + crypto.randomUUID(),
      serverHostname: form.serverHostname.value.trim(),
      serverVersion: form.serverVersion.value.trim(),
      license: form.license.value.trim(),
      account: { kind: form.accountKind.value, login: form.accountLogin.value.trim(), id: form.accountId.value.trim() || "0" },
    });
    await startManifest(created.connection.id, wanted);
  } catch (err) {
    if (err instanceof APIError) showFieldErrors(form, err);
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

async function renderEnabled(c) {
  const rows = [
    ["State", short(c.state)],
    ["GitHub.com account", `${c.account.login} (${short(c.account.kind).toLowerCase()}, id ${c.account.id})`],
    ["Server", `${c.serverHostname}, version ${c.serverVersion}`],
    ["Customer", c.license && c.license.customerName],
    ["License SHA-256", c.license && c.license.sha256],
    ["License public key", c.license && c.license.publicKey],
    ["GitHub App", c.app ? `${c.app.slug} (id ${c.app.appId})` : "—"],
    ["Installation", c.installationId || "—"],
    ["Key in Vault", c.transitKey ? `${c.transitKey.mount}/${c.transitKey.name}, versions ${(c.transitKey.versions || []).join(", ")}` : "—"],
    ...(c.transitKey && c.transitKey.notice ? [["Key rotation", c.transitKey.notice]] : []),
    ["Connected", c.connectTime ? new Date(c.connectTime).toLocaleString() : "—"],
  ];
  const dl = $("#record");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v === undefined || v === "" ? "—" : String(v);
    if (k === "State") dd.className = "state";
    if (k === "Key rotation") { dd.className = "notice"; dd.id = "key-notice"; }
    dl.append(dt, dd);
  }
  const settings = (await api("GET", `/v1/connections/${c.id}/features`)).settings;
  const ul = $("#features");
  ul.replaceChildren();
  for (const info of state.features) {
    const s = settings.features.find((x) => x.feature === info.feature) || {};
    const name = featureName(info.feature);
    const li = document.createElement("li");
    li.id = "feature-" + name;
    const row = document.createElement("div");
    row.className = "row";
    const box = Object.assign(document.createElement("input"), { type: "checkbox", id: "toggle-" + name, checked: !!s.enabled });
    const label = Object.assign(document.createElement("label"), { htmlFor: box.id });
    label.textContent = info.title;
    row.append(box, label);
    const desc = Object.assign(document.createElement("p"), { className: "hint" });
    desc.textContent = info.description;
    const needs = Object.assign(document.createElement("p"), { className: "needs" });
    needs.textContent = `Needs App permissions ${perms(info.permissions)}` + ({ CONSENT_OPT_IN: "; each user links a GitHub.com account and opts in", CONSENT_LINK_FOR_PRIVATE: "; private results need a linked account" }[info.consent] || "");
    const err = Object.assign(document.createElement("p"), { className: "field-error", hidden: true, id: "error-" + name });
    err.setAttribute("role", "alert");
    li.append(row, desc, needs);
    let priv = null;
    if (info.feature === "FEATURE_UNIFIED_SEARCH") {
      const pr = document.createElement("div");
      pr.className = "row";
      priv = Object.assign(document.createElement("input"), { type: "checkbox", id: "private-" + name, checked: !!s.includePrivate, disabled: !s.enabled });
      const pl = Object.assign(document.createElement("label"), { htmlFor: priv.id });
      pl.textContent = "Include private repositories of " + c.account.login + " for users who link their account";
      pr.append(priv, pl);
      li.append(pr);
    }
    li.append(err);
    const save = async () => {
      err.hidden = true;
      box.disabled = true;
      try {
        await api("PATCH", `/v1/connections/${c.id}/features`, { features: [{ feature: info.feature, enabled: box.checked, includePrivate: !!(priv && priv.checked && box.checked) }] });
        if (priv) priv.disabled = !box.checked;
      } catch (e) {
        box.checked = !box.checked;
        err.textContent = e.message;
        err.hidden = false;
      } finally {
        box.disabled = false;
      }
    };
    box.addEventListener("change", save);
    if (priv) priv.addEventListener("change", save);
    ul.append(li);
  }
  $("#confirm-account").textContent = c.account.login;
  $("#disable-btn").onclick = () => $("#confirm").showModal();
  $("#confirm").onclose = async () => {
    if ($("#confirm").returnValue !== "confirm") return;
    $("#disable-btn").disabled = true;
    try {
      await api("POST", `/v1/connections/${c.id}:disconnect`, { reason: "disabled from the admin page" });
      await load();
    } catch (e) {
      banner("Disconnect failed: " + e.message + ". It resumes where it stopped when you try again.");
    } finally {
      $("#disable-btn").disabled = false;
    }
  };
}

async function renderHistory(id) {
  const h = await api("GET", `/v1/connections/${id}/history?pageSize=100`);
  const tbody = $("#history tbody");
  tbody.replaceChildren();
  for (const ev of (h.events || []).slice(-20).reverse()) {
    const tr = document.createElement("tr");
    for (const v of [new Date(ev.eventTime).toLocaleString(), ev.action, ev.actor, short(ev.toState)]) {
      const td = document.createElement("td");
      td.textContent = v || "";
      tr.append(td);
    }
    tbody.append(tr);
  }
}

async function signIn(ev) {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("ghconnect-token", state.token);
  $("#token-error").hidden = true;
  try { await load(); } catch { /* errors are shown */ }
}

window.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#enable-form").addEventListener("submit", enable);
  $("#signout").addEventListener("click", () => signOut(""));
  if (!state.token) { signOut(""); return; }
  load().catch(() => {});
});
