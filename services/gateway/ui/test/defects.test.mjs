// Browser checks of what the admin page used to get wrong: stale state
// after failures, DISCONNECTING and PENDING shown as their own states,
// include-private kept apart from unified search, Back and replayed
// callbacks, field errors, focus, confirmations, the Disable wording and
// the favicon. Run by e2e/ui_defects_test.go against the whole system;
// GitHub.com's outage is the emulator's fault injection. Every check runs
// and reports; the last line counts them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { checks, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.EMU_URL;
const token = process.env.ADMIN_TOKEN;
const license = readFileSync(process.env.LICENSE_FILE, "utf8").trim();
// Back is to meet the page as a browser keeps it: Playwright turns the
// back-forward cache off unless asked not to.
const { browser, page, shot } = await open({ ignoreDefaultArgs: ["--disable-back-forward-cache"] });
await page.addInitScript(() => addEventListener("pageshow", (e) => { window.restoredFromCache = e.persisted; }));

const { check, done } = checks(shot);

async function rest(method, path, body) {
  const resp = await fetch(gw + path, {
    method, headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${JSON.stringify(data)}`);
  return data;
}
const connections = async () => (await rest("GET", "/v1/connections?pageSize=100")).connections || [];
const inState = async (s) => (await connections()).find((c) => c.state === "CONNECTION_STATE_" + s);
const settingOf = async (id, feature) => (await rest("GET", `/v1/connections/${id}/features`)).settings.features.find((f) => f.feature === feature);
const faults = (f) => fetch(emu + "/_emu/faults", { method: "PUT", body: JSON.stringify(f) }).then((r) => assert.equal(r.status, 204, "emulator faults"));

const heading = (name) => page.getByRole("heading", { name });
const enabledHeading = heading("GitHub Connect is enabled");
const notEnabledHeading = heading("GitHub Connect is not enabled yet");
const notice = page.locator("#notice");
const saved = page.getByRole("status").filter({ hasText: /saved/i });
const patched = () => page.waitForResponse((r) => r.url().includes("/features") && r.request().method() === "PATCH");
const activeId = () => page.evaluate(() => document.activeElement && document.activeElement.id);
const checked = (id) => page.locator("#" + id).isChecked();

// fieldError asserts the input is marked invalid and described by a
// visible error right after it that matches pattern.
async function fieldError(inputId, pattern) {
  const input = page.locator("#" + inputId);
  await page.waitForFunction((id) => document.getElementById(id).getAttribute("aria-invalid") === "true", inputId, { timeout: 5000 });
  const ids = ((await input.getAttribute("aria-describedby")) || "").split(/\s+/).filter(Boolean);
  assert.ok(ids.length > 0, `${inputId} has no aria-describedby`);
  const err = page.locator("#" + ids[0]);
  assert.ok(await err.isVisible(), `${inputId}'s error is not visible`);
  assert.match(await err.textContent(), pattern);
  assert.ok(await page.evaluate(([i, e]) => document.getElementById(i).nextElementSibling === document.getElementById(e), [inputId, ids[0]]), `${inputId}'s error is not next to it`);
}

async function noWiderThanWindow() {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `the page is ${scroll} px wide in a ${width} px window`);
}

// fillEnableForm fills the form: the account, and a license file only
// when values bring one (the server has its own). The server's hostname
// and version are its configuration's, read-only.
async function fillEnableForm(values) {
  const v = { login: "octo-org", license: "", ...values };
  await page.getByLabel("License file").fill(v.license);
  await page.getByLabel("Organization login or enterprise slug").fill(v.login);
}
const enableButton = () => page.getByRole("button", { name: "Enable GitHub Connect" });

// Every 404 the page meets on the gateway (the favicon among them).
const missing = [];
page.on("response", (r) => { if (r.status() === 404 && r.url().startsWith(gw)) missing.push(r.url()); });
// GitHub.com's redirects back, to replay them later.
const callbacks = [];
page.on("request", (r) => { if (/\/connect\/(callback|setup)\?/.test(r.url())) callbacks.push(r.url()); });

let fatal = null;
try {
  await signIn(page, gw);
  await notEnabledHeading.waitFor();
} catch (e) {
  fatal = e;
}

if (!fatal) {
  await check("the gateway serves a favicon", async () => {
    const r = await fetch(gw + "/favicon.ico");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") || "", /^image\//);
    assert.ok((await r.arrayBuffer()).byteLength > 0, "empty favicon");
  });

  await check("the form asks for no account id, and the server's own settings are filled in", async () => {
    assert.equal(await page.locator("#accountId").count(), 0, "the form still has an account id field");
    assert.equal(await page.getByLabel("Hostname").inputValue(), "ghes.example.com");
    assert.equal(await page.getByLabel("Hostname").getAttribute("readonly"), "", "the server's hostname is editable without asking");
    assert.ok(await page.locator("#license-default").isVisible(), "the server's license is not shown");
  });

  await check("an unknown organization is a clear field error next to the input", async () => {
    await fillEnableForm({ login: "no-such-org" });
    await enableButton().click();
    await fieldError("accountLogin", /no organization/i);
    assert.doesNotMatch(await page.locator("main").innerText(), /proto:|int64/);
    assert.equal((await connections()).length, 0, "a connection was created");
    await shot("d01-unknown-org");
  });

  await check("long values and their errors keep the page's width", async () => {
    await fillEnableForm({ license: "ghl1." + "l".repeat(3000), login: "o".repeat(300) });
    await enableButton().click();
    await fieldError("license", /./);
    await fieldError("accountLogin", /./);
    await noWiderThanWindow();
    await shot("d02-long-values");
  });

  await check("server field errors are tied to their inputs, and cleared when fixed", async () => {
    await fillEnableForm({ license: "ghl1.not-a-license" });
    await enableButton().click();
    await fieldError("license", /./);
    await fillEnableForm({ login: "no-such-org" });
    await enableButton().click();
    await fieldError("accountLogin", /no organization/i);
    assert.equal(await page.locator("#license").getAttribute("aria-invalid"), null, "the fixed license is still marked invalid");
  });

  await check("enabling through the manifest flow ends on a plain message", async () => {
    await fillEnableForm({});
    // Wait from before the click: the page drops the query as soon as it
    // arrives, so a wait begun after a quick redirect chain never sees it.
    const arrived = page.waitForURL(/connected=/);
    await enableButton().click();
    await arrived;
    await enabledHeading.waitFor();
    await notice.filter({ hasText: /enabled/i }).waitFor({ timeout: 5000 });
    await shot("d03-enabled");
  });

  await check("Back after enabling shows the current state, not the filled-in form", async () => {
    // A page restored from the back-forward cache fires no load event.
    await page.goBack({ waitUntil: "commit" });
    await enabledHeading.waitFor({ timeout: 5000 });
    assert.ok(!(await page.locator("#enable-form").isVisible()), "the Enable form is showing");
    await notice.filter({ hasText: /enabled/i }).waitFor({ timeout: 5000 });
    console.log(`     (Back restored the page from the back-forward cache: ${await page.evaluate(() => window.restoredFromCache)})`);
    await shot("d04-back");
  });

  await check("a reload shows the current state with a plain message", async () => {
    await page.reload();
    await enabledHeading.waitFor({ timeout: 5000 });
    await notice.filter({ hasText: /enabled/i }).waitFor({ timeout: 5000 });
  });

  for (const [kind, pattern] of [["setup", /\/connect\/setup\?/], ["manifest", /\/connect\/callback\?/]]) {
    await check(`a replayed ${kind} callback lands on the current state with a plain message`, async () => {
      const url = callbacks.find((u) => pattern.test(u));
      assert.ok(url, `no ${kind} callback was seen`);
      await page.goto(url);
      await enabledHeading.waitFor({ timeout: 5000 });
      assert.equal(new URL(page.url()).pathname, "/");
      await notice.filter({ hasText: /already|expired|no longer/i }).waitFor({ timeout: 5000 });
      assert.doesNotMatch(await page.locator("body").innerText(), /could not be enabled/);
      await shot(`d05-replayed-${kind}`);
    });
  }

  await check("a broken callback is still reported as a failure", async () => {
    const resp = await page.goto(gw + "/connect/setup?installation_id=1");
    assert.equal(resp.status(), 400);
    assert.match(await page.locator("body").innerText(), /could not be enabled/);
    await page.goto(gw + "/");
    await enabledHeading.waitFor();
  });

  await check("a feature toggled with the keyboard keeps focus and says it was saved", async () => {
    await page.locator("#toggle-unified_search").focus();
    await Promise.all([patched(), page.keyboard.press("Space")]);
    await saved.first().waitFor({ timeout: 5000 });
    assert.equal(await activeId(), "toggle-unified_search", "focus left the toggle");
    assert.ok(await checked("toggle-unified_search"));
    // "Saved" is by the control it confirms, in sight with it.
    const said = page.locator("#feature-unified_search").getByRole("status").filter({ hasText: /^Saved: Unified search is on/ });
    await said.waitFor({ timeout: 5000 });
    const [toggle, msg] = [await page.locator("#toggle-unified_search").boundingBox(), await said.boundingBox()];
    // (Within a pixel: scrolled to the window's edge, its box may end a
    // fraction of a pixel past it.)
    const inView = await said.evaluate((el) => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight + 1; });
    assert.ok(msg.y - toggle.y < 200 && inView, `"Saved" is ${Math.round(msg.y - toggle.y)} px below its toggle (in view: ${inView})`);
  });

  await check("include-private is its own setting and survives unified search off and on", async () => {
    const id = (await inState("CONNECTED")).id;
    await page.locator("#private-unified_search").focus();
    await Promise.all([patched(), page.keyboard.press("Space")]);
    assert.equal(await activeId(), "private-unified_search", "focus left the include-private box");
    assert.ok((await settingOf(id, "FEATURE_UNIFIED_SEARCH")).includePrivate, "include-private was not saved");
    await page.locator("#toggle-unified_search").focus();
    await Promise.all([patched(), page.keyboard.press("Space")]);
    let s = await settingOf(id, "FEATURE_UNIFIED_SEARCH");
    assert.ok(!s.enabled && s.includePrivate, `after unified search off the server has ${JSON.stringify(s)}`);
    assert.ok(await checked("private-unified_search"), "the page dropped include-private");
    await page.reload();
    await enabledHeading.waitFor();
    assert.ok(!(await checked("toggle-unified_search")) && (await checked("private-unified_search")), "after a reload");
    await page.locator("#toggle-unified_search").focus();
    await Promise.all([patched(), page.keyboard.press("Space")]);
    s = await settingOf(id, "FEATURE_UNIFIED_SEARCH");
    assert.ok(s.enabled && s.includePrivate, `after unified search on again the server has ${JSON.stringify(s)}`);
    await page.reload();
    await enabledHeading.waitFor();
    assert.ok((await checked("toggle-unified_search")) && (await checked("private-unified_search")), "after on again and a reload");
    await shot("d06-include-private");
  });

  await check("a failed include-private change shows the server's settings, unified search untouched", async () => {
    const id = (await inState("CONNECTED")).id;
    // Another administrator changes the settings behind this page's back.
    await rest("PATCH", `/v1/connections/${id}/features`, { features: [{ feature: "FEATURE_ACTIONS_ACCESS", enabled: true }] });
    const before = await settingOf(id, "FEATURE_UNIFIED_SEARCH");
    await page.locator("#private-unified_search").focus();
    const [resp] = await Promise.all([patched(), page.keyboard.press("Space")]);
    assert.ok(!resp.ok(), `the stale change was accepted (${resp.status()})`);
    const err = page.locator("#error-unified_search");
    await err.waitFor({ state: "visible", timeout: 5000 });
    assert.match(await err.textContent(), /changed|again/i);
    await page.waitForFunction(() => document.getElementById("toggle-actions_access")?.checked, null, { timeout: 5000 });
    assert.equal(await checked("toggle-unified_search"), before.enabled, "unified search does not show the server's setting");
    assert.equal(await checked("private-unified_search"), before.includePrivate, "include-private does not show the server's setting");
    assert.equal(await activeId(), "private-unified_search", "focus left the include-private box");
    await shot("d07-stale-change");
  });

  let appSettings = "";
  await check("Disable's wording: the installation goes, the key is deleted, the App is deleted on GitHub.com", async () => {
    const c = await inState("CONNECTED");
    appSettings = `${emu}/organizations/${c.account.login}/settings/apps/${c.app.slug}`;
    const section = page.locator("#enabled");
    const text = await section.innerText();
    assert.match(text, /installation/i);
    assert.match(text, /private key/i);
    assert.doesNotMatch(text, /removes the GitHub App from/);
    assert.ok(await section.locator(`a[href="${appSettings}"]`).first().isVisible(), `no link to ${appSettings}`);
    await page.getByRole("button", { name: "Disable GitHub Connect" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    const said = await dialog.innerText();
    assert.match(said, /installation/i);
    assert.match(said, /private key/i);
    assert.match(said, /delete[^.]*on GitHub\.com|on GitHub\.com[^.]*delete/i);
    assert.ok(await dialog.locator(`a[href="${appSettings}"]`).isVisible(), "the dialog has no link to the App's settings");
    await shot("d08-disable-wording");
    await dialog.getByRole("button", { name: "Cancel" }).click();
  });

  const disconnectingShown = async () => {
    await heading(/did not finish/).waitFor({ timeout: 10000 });
    assert.equal(await page.locator(".record .state").textContent(), "DISCONNECTING");
    assert.equal(await page.locator("#toggle-unified_search").count(), 0, "feature toggles are shown");
    assert.ok(!(await enabledHeading.isVisible()), "still under “GitHub Connect is enabled”");
    assert.match(await page.locator("#disconnect-steps").innerText(), /switched off[^\n]*\bdone/i);
    assert.ok(await page.getByRole("button", { name: "Retry disconnect" }).isVisible(), "no Retry disconnect button");
  };

  await check("a Disable that fails during a GitHub.com outage shows DISCONNECTING", async () => {
    await faults({ server_errors: 100000 });
    await page.getByRole("button", { name: "Disable GitHub Connect" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes(":disconnect"), { timeout: 60000 }),
      dialog.getByRole("button", { name: "Disable GitHub Connect" }).click(),
    ]);
    assert.ok(!resp.ok(), "the disconnect did not fail");
    const c = await inState("DISCONNECTING");
    assert.ok(c, "the server is not DISCONNECTING");
    const features = (await rest("GET", `/v1/connections/${c.id}/features`)).settings.features;
    assert.ok(features.every((f) => !f.enabled), "a feature is still on at the server");
    await disconnectingShown();
    assert.match(await page.locator("#banner").innerText(), /did not finish|failed/i);
    await shot("d09-disconnect-failed");
  });

  await check("after a reload DISCONNECTING is its own state with its steps", async () => {
    await page.reload();
    await disconnectingShown();
    await page.setViewportSize({ width: 360, height: 800 });
    await noWiderThanWindow();
    await shot("d10-disconnecting-narrow");
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  await check("Retry disconnect resumes and finishes, and points at the App left on GitHub.com", async () => {
    await faults({});
    await page.getByRole("button", { name: "Retry disconnect" }).click();
    await notEnabledHeading.waitFor({ timeout: 30000 });
    assert.ok(await inState("DISCONNECTED"), "the connection is not DISCONNECTED");
    await page.locator("#timeline tbody tr", { hasText: "Disconnect finished: GitHub Connect is disabled" }).first().waitFor();
    assert.ok(await page.locator(`main a[href="${appSettings}"]`).first().isVisible(), "no link to delete the App on GitHub.com");
    await shot("d11-retried");
  });
  // Whatever the page did, later checks start from no active connection.
  await faults({});
  for (const c of await connections()) {
    if (c.state === "CONNECTION_STATE_DISCONNECTING") await rest("POST", `/v1/connections/${c.id}:disconnect`, {});
  }

  let pendingId = "";
  await check("a page opened before another admin began enabling is refused, naming their connection, and shows it PENDING", async () => {
    await page.reload();
    await notEnabledHeading.waitFor();
    pendingId = (await rest("POST", "/v1/connections", {
      requestId: "ui-pending-" + Date.now(), license,
      account: { kind: "ACCOUNT_KIND_ORGANIZATION", login: "octo-org" },
    })).connection.id;
    // This page still shows the Enable form: one connection per server.
    await fillEnableForm({ login: "octo-labs" });
    await enableButton().click();
    await page.locator("#banner").filter({ hasText: `Not enabled: connection ${pendingId} for octo-org is PENDING: disable it before connecting another account` }).waitFor({ timeout: 10000 });
    await heading(/not finished/).waitFor({ timeout: 5000 });
    assert.equal((await connections()).filter((c) => c.state !== "CONNECTION_STATE_DISCONNECTED").length, 1, "a second live connection was made");
    await shot("d12-refused-second");
  });

  await check("a PENDING connection is shown as such", async () => {
    await page.reload();
    await heading(/not finished/).waitFor({ timeout: 5000 });
    assert.equal(await page.locator(".record .state").textContent(), "PENDING");
    assert.ok(!(await page.locator("#enable-form").isVisible()), "the Enable form is showing");
    assert.ok(await page.getByRole("button", { name: "Continue on GitHub.com" }).isVisible(), "no way to continue");
    await shot("d12-pending");
  });

  await check("a PENDING connection whose App waits to be installed continues on GitHub.com", async () => {
    assert.ok(pendingId, "no PENDING connection");
    // The administrator created the App on GitHub.com and left before
    // installing it.
    const start = await rest("POST", `/v1/connections/${pendingId}:startAppManifest`, { callbackUrl: gw + "/connect/callback" });
    const created = await fetch(start.postUrl, { method: "POST", body: new URLSearchParams({ manifest: start.manifest }), redirect: "manual" });
    // GitHub.com's redirect back comes in the signed-in admin's browser
    // (the gateway takes it only with their session): page.request shares
    // the page's cookies.
    const toInstall = await page.request.get(created.headers.get("location"), { maxRedirects: 0 });
    assert.match(toInstall.headers()["location"] || "", /\/installations\/new/);
    const slug = (await rest("GET", `/v1/connections/${pendingId}`)).connection.app.slug;
    await page.reload();
    await heading(/not finished/).waitFor({ timeout: 5000 });
    assert.match(await page.locator("#pending").innerText(), new RegExp(`${slug}[^.]*install`, "i"));
    const arrived = page.waitForURL(/connected=/);
    await page.getByRole("button", { name: "Continue on GitHub.com" }).click();
    await arrived;
    await enabledHeading.waitFor();
    await shot("d13-continued");
  });

  await check("the connected page keeps a narrow window's width", async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    await noWiderThanWindow();
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  // Two tabs of the same signed-in admin: Alice's stays open on what it
  // last read while Dave acts in the other.
  await check("a stale tab's Cancel leaves alone a connection enabled meanwhile, and says what changed", async () => {
    for (const c of await connections()) {
      if (c.state === "CONNECTION_STATE_CONNECTED") await rest("POST", `/v1/connections/${c.id}:disconnect`, { reason: "stale-tab check" });
    }
    const id = (await rest("POST", "/v1/connections", {
      requestId: "ui-stale-" + Date.now(), license,
      account: { kind: "ACCOUNT_KIND_ORGANIZATION", login: "octo-org" },
    })).connection.id;
    await page.reload();
    await heading(/not finished/).waitFor({ timeout: 5000 });
    const dave = await page.context().newPage();
    try {
      await dave.goto(gw + "/");
      const arrived = dave.waitForURL(/connected=/);
      await dave.getByRole("button", { name: "Continue on GitHub.com" }).click();
      await arrived;
      await dave.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
    } finally {
      await dave.close();
    }
    await page.getByRole("button", { name: "Cancel enabling" }).click();
    await enabledHeading.waitFor();
    await page.locator("#notice", { hasText: "Not cancelled" }).waitFor();
    assert.match(await notice.textContent(), /Not cancelled: someone changed this connection while the page was open; it is connected now/);
    assert.equal((await rest("GET", `/v1/connections/${id}`)).connection.state, "CONNECTION_STATE_CONNECTED", "the stale Cancel tore the connection down");
    await shot("d14-stale-cancel");
  });

  await check("a stale tab's feature toggle says the connection was disabled meanwhile", async () => {
    const c = await inState("CONNECTED");
    assert.ok(c, "no CONNECTED connection");
    await enabledHeading.waitFor();
    await rest("POST", `/v1/connections/${c.id}:disconnect`, { reason: "disabled in another tab" });
    // click, not check: the change is refused, so the box does not stay ticked.
    await page.locator("#toggle-unified_search").click();
    await notEnabledHeading.waitFor();
    await page.locator("#notice", { hasText: "Not saved" }).waitFor();
    assert.match(await notice.textContent(), /Not saved: Unified search was not changed, because someone changed this connection while the page was open; GitHub Connect for octo-org is disabled now/);
    assert.equal((await settingOf(c.id, "FEATURE_UNIFIED_SEARCH")).enabled, false);
    await shot("d15-stale-toggle");
  });

  await check("every App this server created that GitHub.com still has is listed, each until it is deleted there", async () => {
    // Connected to octo-org again, so GitHub.com can be asked about its
    // private Apps.
    await rest("POST", "/v1/connections", {
      requestId: "ui-left-" + Date.now(), license,
      account: { kind: "ACCOUNT_KIND_ORGANIZATION", login: "octo-org" },
    });
    await page.reload();
    await heading(/not finished/).waitFor({ timeout: 5000 });
    const arrived = page.waitForURL(/connected=/);
    await page.getByRole("button", { name: "Continue on GitHub.com" }).click();
    await arrived;
    await enabledHeading.waitFor();
    const items = page.locator("#apps-left-list li");
    await items.first().waitFor();
    const n = await items.count();
    assert.ok(n >= 2, `only ${n} App(s) listed; this test left at least two on GitHub.com (a disable, a cancelled attempt)`);
    for (const text of await items.allInnerTexts()) assert.match(text, /GitHub\.com still has it/);
    assert.match(await items.first().locator("a").getAttribute("href"), /\/organizations\/octo-org\/settings\/apps\//);
    const gone = await items.first().getAttribute("data-app");
    const del = await fetch(`${emu}/_emu/apps/${gone}`, { method: "DELETE" });
    assert.equal(del.status, 204);
    await page.reload();
    await enabledHeading.waitFor();
    await items.first().waitFor();
    assert.equal(await items.count(), n - 1, "the deleted App is still listed, or another went");
    assert.equal(await page.locator(`#apps-left-list li[data-app="${gone}"]`).count(), 0);
    await page.locator("#timeline tbody tr", { hasText: "The GitHub App left on GitHub.com was found deleted there" }).first().waitFor();
    await shot("d16-apps-left");
  });

  await check("no request of the page met a 404", async () => {
    assert.deepEqual(missing, []);
  });
}

await browser.close();
if (fatal) {
  console.error("defects test could not sign in: " + (fatal.stack || fatal));
  process.exitCode = 1;
} else {
  done();
}
