// Browser checks of a server that has two live connections, made before it
// had one at a time (run by e2e/ui_legacy_test.go): OLDER_ID for octo-org,
// CONNECTED, and NEWER_ID for octo-labs, PENDING. The page shows the newest
// and lists the other with a way to disable it; disabling it leaves one.
// Every check runs and reports; the last line counts them.
import assert from "node:assert/strict";
import { checks, fitsIn, open, signIn } from "./browser.mjs";

const gw = process.env.GATEWAY_URL;
const token = process.env.ADMIN_TOKEN;
const { OLDER_ID: older, NEWER_ID: newer } = process.env;
const ui = await open();
const { page, shot } = ui;
const result = checks(shot);
const { check } = result;

const live = async () => {
  const resp = await fetch(gw + "/v1/connections?pageSize=100", { headers: { Authorization: "Bearer " + token } });
  return ((await resp.json()).connections || []).filter((c) => c.state !== "CONNECTION_STATE_DISCONNECTED").map((c) => c.id);
};
const others = page.locator("#others");
const item = others.locator(`li[data-connection="${older}"]`);

let fatal = null;
try {
  await signIn(page, gw);
  await page.getByRole("heading", { name: "Enabling GitHub Connect is not finished" }).waitFor();
} catch (e) {
  fatal = e;
}

if (!fatal) {
  await check("the newest live connection is shown, the other listed beside it", async () => {
    assert.match(await page.locator("#pending-what").textContent(), /octo-labs/);
    await page.getByRole("heading", { name: "More than one connection is live" }).waitFor();
    assert.equal(await others.locator("li").count(), 1, "one other live connection");
    const text = await item.innerText();
    for (const want of ["octo-org", "Connected", older]) assert.ok(text.includes(want), `the listed connection does not say ${want}: ${text}`);
    assert.ok(!text.includes(newer), "the shown connection is listed too");
    assert.ok(!(await page.locator("#enable-form").isVisible()), "the Enable form is showing");
    await shot("l01-two-live");
  });

  await check("the list keeps a narrow window's width", async () => {
    await fitsIn(page, 360);
    await shot("l02-narrow");
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  await check("an auditor sees the list and cannot disable", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, gw, { login: "ada@example.com", groups: "ghconnect-auditors" });
    await page.getByRole("heading", { name: "More than one connection is live" }).waitFor();
    // The page says it is read-only once it has applied the role.
    await page.locator("#readonly-note").waitFor();
    assert.ok(await item.getByRole("button", { name: "Disable octo-org" }).isDisabled(), "an auditor may disable");
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, gw);
    await page.getByRole("heading", { name: "More than one connection is live" }).waitFor();
  });

  await check("Disable asks first, naming the listed account; Cancel changes nothing", async () => {
    await item.getByRole("button", { name: "Disable octo-org" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /installation from octo-org/);
    await shot("l03-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.deepEqual((await live()).sort(), [newer, older].sort(), "Cancel disabled something");
    // The dialog names the shown connection's account again.
    assert.equal(await page.locator("#confirm strong.account").first().textContent(), "octo-labs");
  });

  await check("disabling the listed connection leaves one live, the shown one", async () => {
    await item.getByRole("button", { name: "Disable octo-org" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    await dialog.getByRole("button", { name: "Disable GitHub Connect" }).click();
    await page.locator("#notice").filter({ hasText: "GitHub Connect is disabled for octo-org." }).waitFor({ timeout: 30000 });
    await others.waitFor({ state: "hidden" });
    await page.getByRole("heading", { name: "Enabling GitHub Connect is not finished" }).waitFor();
    assert.match(await page.locator("#pending-what").textContent(), /octo-labs/);
    assert.deepEqual(await live(), [newer]);
    await page.locator("#timeline tbody tr", { hasText: "Disconnect finished: GitHub Connect is disabled" }).first().waitFor();
    await shot("l04-one-live");
  });

}

await ui.browser.close();
if (fatal) {
  console.error("legacy test could not start: " + (fatal.stack || fatal));
  process.exitCode = 1;
} else {
  result.done();
}
