// Browser test of the admin page: Debian chromium driven by playwright-core
// against a running ghconnect (started by e2e/ui_test.go), through the
// GitHub emulator. Screenshots of each state go to $ARTIFACTS.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const emu = process.env.EMU_URL;
const token = process.env.ADMIN_TOKEN;
const license = readFileSync(process.env.LICENSE_FILE, "utf8").trim();
const { browser, page, shot, out } = await open();
let step = "start";
try {
  step = "sign in";
  await signIn(page, gw);
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  await shot("02-not-enabled");

  step = "before enabling: what GitHub.com will keep, the Addendum, and no false claim about features left out";
  const stored = await page.locator("#stored").innerText();
  for (const item of ["public key part of this server's license", "a hash of the license", "customer name", "hostname and version", "organization or enterprise account", "token this server uses"]) {
    assert.ok(stored.includes(item), `the page does not say GitHub.com keeps ${item}`);
  }
  assert.match(await page.locator("#addendum").getAttribute("href"), /github-connect-addendum/);
  assert.doesNotMatch(await page.locator("#disabled").innerText(), /without a new App/);

  step = "the server's own settings are filled in, read-only and looking so; no account id is asked";
  const look = (sel) => page.locator(sel).evaluate((el) => { const s = getComputedStyle(el); return `${s.backgroundColor}|${s.borderStyle}|${s.borderColor}`; });
  assert.notEqual(await look("#serverHostname"), await look("#accountLogin"), "a read-only field looks like an editable one");
  assert.equal(await page.getByLabel("Hostname").inputValue(), "ghes.example.com");
  assert.equal(await page.getByLabel("Version").inputValue(), "3.14.2");
  // They are the server's configuration, as on GHES: nothing in the page
  // changes them.
  for (const label of ["Hostname", "Version"]) {
    assert.ok(await page.getByLabel(label).evaluate((el) => el.readOnly), `${label} can be edited`);
  }
  assert.equal(await page.getByRole("button", { name: "Change server settings" }).count(), 0, "the server's settings can still be changed");
  assert.equal(await page.locator("#accountId").count(), 0, "the form still asks for an account id");

  step = "validation errors next to the fields";
  await page.getByLabel("License file").fill(license);
  await page.getByLabel("Organization login or enterprise slug").fill("octo--org");
  await page.getByRole("button", { name: "Enable GitHub Connect" }).click();
  const loginError = page.locator('.field-error[data-field="account.login"]');
  await loginError.waitFor({ state: "visible" });
  assert.match(await loginError.textContent(), /hyphen|character|login/i);
  assert.equal(await page.evaluate(() => document.activeElement.id), "accountLogin", "focus moves to the wrong field");
  await shot("03-validation");

  step = "enable GitHub Connect through the manifest flow";
  await page.getByLabel("Organization login or enterprise slug").fill("octo-org");
  // Leave Dependabot alerts out: the App will lack its permission.
  await page.getByLabel(/^Dependabot alerts/).uncheck();
  // Waiting from before the click: the page drops the query on arrival.
  const arrived = page.waitForURL(/connected=/);
  const created = page.waitForRequest((r) => r.url().endsWith("/v1/connections") && r.method() === "POST");
  const manifest = page.waitForRequest((r) => r.url().endsWith(":startAppManifest"));
  await page.getByRole("button", { name: "Enable GitHub Connect" }).click();
  const sent = JSON.parse((await created).postData());
  // The App asks for what the feature gate says the chosen features need
  // together (the page ranks no levels itself).
  const asked = JSON.parse((await manifest).postData()).permissions;
  assert.equal(asked.metadata, "read", `the App asked for ${JSON.stringify(asked)}`);
  assert.ok(!("vulnerability_alerts" in asked), `the App asked for Dependabot's permission, left out: ${JSON.stringify(asked)}`);
  assert.ok(!("serverHostname" in sent) && !("serverVersion" in sent), `the page sent the server's settings: ${JSON.stringify(Object.keys(sent))}`);
  await arrived;
  await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  assert.equal(await page.locator(".record .state").textContent(), "CONNECTED");
  step = "the record shows GitHub.com's id of octo-org, not a typed one";
  const org = await (await fetch(process.env.GITHUB_API_URL + "/orgs/octo-org")).json();
  assert.match(await page.locator("#enabled .record").first().innerText(), new RegExp(`octo-org \\(organization, id ${org.id}\\)`));
  await shot("04-enabled");

  step = "enable unified search";
  await Promise.all([
    page.waitForResponse((r) => r.url().includes("/features") && r.request().method() === "PATCH"),
    page.locator("#toggle-unified_search").check(),
  ]);
  await page.reload();
  await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  assert.ok(await page.locator("#toggle-unified_search").isChecked(), "unified search did not stay on");
  await shot("05-unified-search-on");

  step = "unified contributions says how sending goes: no one opted in, nothing uploaded yet";
  {
    const st = page.locator("#feature-unified_contributions #contrib-status");
    const row = (k) => st.locator("dt", { hasText: k }).locator("xpath=following-sibling::dd[1]");
    await row("Users opted in").waitFor();
    assert.equal(await row("Users opted in").textContent(), "0");
    assert.equal(await row("Last upload").textContent(), "none yet");
    assert.match(await row("Waiting to be sent").textContent(), /^0 \(Nothing waits/);
    assert.equal(await row("Last error").textContent(), "none");
  }

  step = "a feature the App lacks permissions for is shown up front, and a refresh after granting it";
  // Before anyone clicks: off, not switchable, the permission in words and
  // how to add it.
  const missing = page.locator("#missing-dependabot_alerts");
  await missing.waitFor({ state: "visible" });
  assert.match(await missing.textContent(), /read Dependabot alerts \(vulnerability_alerts: read\)/);
  assert.match(await missing.textContent(), /accept the App's new permissions on its installation; then press Refresh permissions/);
  assert.ok(await page.locator("#toggle-dependabot_alerts").isDisabled(), "a feature the App cannot serve can be switched on");
  await shot("06-missing-permission");
  // The App's owner adds the permission on GitHub.com and octo-org accepts
  // it (the emulator's side); Refresh permissions re-reads it.
  const record = (await (await fetch(gw + "/v1/connections", { headers: { Authorization: "Bearer " + token } })).json())
    .connections.find((c) => c.state === "CONNECTION_STATE_CONNECTED");
  const granted = { ...record.app.permissions, vulnerability_alerts: "read" };
  const put = await fetch(`${emu}/_emu/installations/${record.installationId}/permissions`, { method: "PUT", body: JSON.stringify(granted) });
  assert.equal(put.status, 204);
  await page.getByRole("button", { name: "Refresh permissions" }).click();
  await page.getByText("Permissions refreshed: the App gained vulnerability_alerts:read and lost nothing").waitFor();
  assert.ok(await missing.isHidden(), "the missing-permission note stayed");
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "refresh-perms-btn", "focus was lost after Refresh permissions");
  await Promise.all([
    page.waitForResponse((r) => r.url().includes("/features") && r.request().method() === "PATCH" && r.ok()),
    page.locator("#toggle-dependabot_alerts").check(),
  ]);

  step = "Dependabot alerts on: the vulnerability data arrives at once, and the page says so";
  const advisoryRow = (k) => page.locator("#feature-dependabot_alerts #advisory-status dt", { hasText: k }).locator("xpath=following-sibling::dd[1]");
  {
    let lastRun = "";
    for (let i = 0; i < 100 && !/: ok, /.test(lastRun); i++) {
      await page.reload();
      await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
      await advisoryRow("Last run").waitFor();
      lastRun = await advisoryRow("Last run").textContent();
      if (!/: ok, /.test(lastRun)) await page.waitForTimeout(200); // the sync runs in the feature gate
    }
    const m = /: ok, (\d+) received, (\d+) new or changed$/.exec(lastRun);
    assert.ok(m && m[1] === m[2] && Number(m[1]) > 0, `last run: ${lastRun}`);
    assert.equal(await advisoryRow("Advisories held").textContent(), m[1], "a full sync holds what it received");
    assert.match(await advisoryRow("Vulnerability data").textContent(), /^up to date as of the last run; the next is at /);
    assert.notEqual(await advisoryRow("Next run").textContent(), "none while the sync is off");
    assert.equal(await advisoryRow("Last error").textContent(), "none");
    await shot("06a-vulnerability-data");
  }

  step = "GitHub.com actions on: a runner's download shows on the page, and the admin narrows the policy";
  {
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/features") && r.request().method() === "PATCH" && r.ok()),
      page.locator("#toggle-actions_access").check(),
    ]);
    // A runner on the server, with its own token, through the gateway.
    const runnerGet = (action) => fetch(`${gw}/v1/actions/${action.replace("@", "/tarball/")}`, { headers: { Authorization: "Bearer " + process.env.RUNNER_TOKEN } });
    const got = await runnerGet("actions/checkout@main");
    assert.equal(got.status, 200, "a runner's download of actions/checkout@main");
    assert.equal(got.headers.get("content-type"), "application/x-gzip");
    const tarball = Buffer.from(await got.arrayBuffer());
    assert.equal(tarball.length, Number(got.headers.get("content-length")));
    assert.deepEqual([...tarball.subarray(0, 2)], [0x1f, 0x8b], "a gzip file");
    await page.reload();
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
    const actionsRow = (k) => page.locator("#feature-actions_access #actions-status dt", { hasText: k }).locator("xpath=following-sibling::dd[1]");
    await actionsRow("Last download").waitFor();
    assert.match(await actionsRow("Runners").textContent(), /^serving runners public actions from GitHub.com as the App of connection /);
    assert.match(await actionsRow("Last download").textContent(), /^actions\/checkout@main \([0-9a-f]{40}\), \d+ bytes, /);
    assert.match(await actionsRow("Downloads from GitHub.com").textContent(), /^1 \(/);
    assert.match(await actionsRow("Cache of this replica").textContent(), /^1 tarballs, /);
    assert.ok(await page.locator("#actions-all").isChecked(), "the default policy allows all actions");
    assert.ok(await page.locator("#actions-github-owned").isDisabled(), "GitHub's own actions are a choice of selected actions only");
    assert.match(await page.locator("#actions-policy-meta").textContent(), /^GHES's default/);

    // A bad pattern: refused in place, nothing saved.
    await page.locator("#actions-selected").check();
    assert.ok(await page.locator("#actions-github-owned").isEnabled());
    await page.locator("#actions-patterns").fill("octo-org/*\nnot a pattern");
    await page.getByRole("button", { name: "Save the actions policy" }).click();
    const policyError = page.locator("#actions-policy-error");
    await policyError.waitFor({ state: "visible" });
    assert.match(await policyError.textContent(), /patterns\[1\] "not a pattern"/);
    assert.equal(await page.locator("#actions-patterns").getAttribute("aria-invalid"), "true");
    const unchanged = await (await fetch(`${gw}/v1/actions/policy`, { headers: { Authorization: "Bearer " + token } })).json();
    assert.equal(unchanged.policy.allowed, "ACTIONS_ALLOWED_ALL", "a refused policy was saved");

    // Selected actions: octo-org's and GitHub's, less one blocked.
    await page.locator("#actions-github-owned").check();
    await page.locator("#actions-patterns").fill("octo-org/*\n!actions/checkout@main");
    await page.getByRole("button", { name: "Save the actions policy" }).click();
    await page.getByText("Actions policy saved.").waitFor();
    assert.ok(await policyError.isHidden(), "the error stayed after a save that worked");
    assert.match(await page.locator("#actions-policy-meta").textContent(), /^Last changed by \S+ /);
    const blocked = await runnerGet("actions/checkout@main");
    assert.equal(blocked.status, 403);
    assert.match((await blocked.json()).message, /blocked by the enterprise's actions policy \("!actions\/checkout@main"\)/);
    await page.reload();
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
    await actionsRow("Last refused").waitFor();
    assert.match(await actionsRow("Last refused").textContent(), /^actions\/checkout@main is blocked by the enterprise's actions policy/);
    assert.ok(await page.locator("#actions-selected").isChecked(), "the saved policy is shown after a reload");
    assert.equal(await page.locator("#actions-patterns").inputValue(), "octo-org/*\n!actions/checkout@main");
    await shot("06c-actions-policy");
    await Promise.all([
      page.waitForResponse((r) => r.url().includes("/features") && r.request().method() === "PATCH" && r.ok()),
      page.locator("#toggle-actions_access").uncheck(),
    ]);
  }

  step = "a permission removed on GitHub.com: the feature stays on, shown and checked as not working";
  const fewer = { ...granted };
  delete fewer.vulnerability_alerts;
  const cut = await fetch(`${emu}/_emu/installations/${record.installationId}/permissions`, { method: "PUT", body: JSON.stringify(fewer) });
  assert.equal(cut.status, 204);
  await page.getByRole("button", { name: "Refresh permissions" }).click();
  await page.getByText("Permissions refreshed: the App gained nothing and lost vulnerability_alerts:read").waitFor();
  await missing.waitFor({ state: "visible" });
  assert.match(await missing.textContent(), /On, but not working: the GitHub App may no longer read Dependabot alerts \(vulnerability_alerts: read\)/);
  assert.ok(await page.locator("#toggle-dependabot_alerts").isChecked(), "the feature should stay on (and say it does not work)");
  assert.ok(await page.locator("#toggle-dependabot_alerts").isEnabled(), "a feature that does not work cannot be switched off");
  const checked = await (await fetch(`${gw}/v1/connections/${record.id}/features:check`, {
    method: "POST", headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify({ users: ["mona"], features: ["FEATURE_DEPENDABOT_ALERTS"] }),
  })).json();
  assert.equal(checked.results[0].reason, "REASON_MISSING_PERMISSIONS", JSON.stringify(checked));
  assert.deepEqual(checked.results[0].missingPermissions, { vulnerability_alerts: "read" });
  // The timeline says what the refresh found and what stopped working.
  await page.locator("#timeline tbody tr", { hasText: "(lost vulnerability_alerts:read)" }).first().waitFor();
  await page.locator("#timeline tbody tr", { hasText: "on but no longer working: Dependabot alerts" }).first().waitFor();
  await shot("06b-permission-lost");
  // Not working, the feature downloads nothing: the sync is off.
  await page.reload();
  await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  await advisoryRow("Next run").waitFor();
  assert.equal(await advisoryRow("Next run").textContent(), "none while the sync is off");
  assert.match(await advisoryRow("Vulnerability data").textContent(), /^off: Dependabot alerts work on no connection/);

  step = "a key version imported in Vault that GitHub.com does not accept yet";
  // The operator follows the README's runbook; the page says what ghconnect
  // found.
  const conns = await (await fetch(gw + "/v1/connections", { headers: { Authorization: "Bearer " + token } })).json();
  const key = conns.connections.find((c) => c.state === "CONNECTION_STATE_CONNECTED").transitKey.name;
  // The runbook the page links to, as the gateway serves it, run verbatim.
  const runbookPage = await (await fetch(gw + "/key-rotation.html")).text();
  const unescape = (t) => t.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
  const runbook = unescape(runbookPage.split('<code data-runbook="import">')[1].split("</code>")[0]);
  execFileSync("bash", ["-c", runbook], { env: { ...process.env, KEY: key }, stdio: "pipe" });
  const notice = page.locator("#key-notice");
  for (let i = 0; i < 40 && !(await notice.isVisible()); i++) {
    await page.waitForTimeout(250);
    await page.reload();
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  }
  assert.match(await notice.textContent(), /key version 2 is in Vault but GitHub.com does not accept it yet: GitHub.com accepts only keys it generated/);
  assert.match(await page.locator("#key-record").innerText(), /Key last signed\s+(not yet|.+, with version 1)/);
  assert.match(await page.locator("#key-record").innerText(), /Last signing error/);
  assert.equal(await page.locator("#runbook-link").getAttribute("href"), "/key-rotation.html");
  await shot("07-key-rotation-pending");

  step = "GitHub.com accepts the new key: the page asks to finish the rotation";
  // On GitHub.com the new key is the App's (the emulator's side of
  // "Generate a private key").
  const added = await fetch(`${emu}/_emu/apps/${record.app.appId}/keys`, { method: "POST", body: readFileSync(process.env.NEW_PUB, "utf8") });
  assert.equal(added.status, 204);
  const prompt = page.locator("#key-prompt");
  for (let i = 0; i < 40 && !(await prompt.isVisible()); i++) {
    await page.waitForTimeout(250);
    await page.reload();
    await page.getByRole("heading", { name: "GitHub Connect is enabled" }).waitFor();
  }
  assert.match(await prompt.innerText(), /Key version 2 signs now\. Finish the rotation: delete the old key in the App's settings on GitHub\.com, then retire version 1 in Vault/);
  await shot("07b-key-rotation-finish");

  step = "narrow window";
  await page.setViewportSize({ width: 360, height: 800 });
  // "Sign out" stays on one line, and the times say their zone.
  const signOut = await page.getByRole("button", { name: "Sign out" }).boundingBox();
  const lineHeight = await page.getByRole("button", { name: "Sign out" }).evaluate((el) => parseFloat(getComputedStyle(el).lineHeight));
  assert.ok(signOut.height < 2 * lineHeight, `Sign out is ${signOut.height} px high: it wraps`);
  assert.match(await page.locator("#timeline tbody tr time").first().textContent(), /\b(UTC|GMT[+-]?\d*|[A-Z]{3,5})$/, "a time without its zone");
  await shot("08-narrow");
  await page.setViewportSize({ width: 1100, height: 900 });

  step = "disable GitHub Connect behind a confirmation";
  await page.getByRole("button", { name: "Disable GitHub Connect" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /delete the App's private key from Vault/);
  await shot("09-confirm-disable");
  await dialog.getByRole("button", { name: "Disable GitHub Connect" }).click();
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  await page.locator("#timeline tbody tr", { hasText: "Disconnect finished: GitHub Connect is disabled" }).first().waitFor();
  await shot("10-disconnected");

  step = "the gateway is down";
  await page.route("**/v1/**", (route) => route.abort("connectionrefused"));
  await page.reload();
  await page.getByText("Cannot reach the gateway").waitFor();
  await shot("11-gateway-down");

  step = "keyboard: signing in works without a mouse";
  await page.unroute("**/v1/**");
  await page.reload();
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "sso-link", "focus is not on the sign-in link");
  await page.keyboard.press("Enter");
  await page.getByLabel("Email").waitFor();
  await page.getByLabel("Email").press("Enter"); // the provider's suggestion: admin@example.com, ghconnect-admins
  await page.getByRole("heading", { name: "GitHub Connect is not enabled yet" }).waitFor();
  console.log("ui test: 11 states checked, screenshots in " + out);
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(`ui test failed at "${step}": ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
